"""Credential anchors: a salted digest of each issued credential, on the ledger.

``anchor = hash_value(CREDENTIAL_ANCHOR, {"salt": salt, "credential": issuer_jwt})``
where ``issuer_jwt`` is the issuer-signed part of the SD-JWT (before the first
``~``: it holds only digests of claims, never a disclosure) and ``salt`` is at
least 16 random bytes the issuer keeps (and may hand the holder). Without the
salt, nobody can test a guess of a credential against the anchor; with it, an
auditor shown the credential can check that it was issued, and when, by whom.

State ``anchor/<hex digest>``: ``{issuer, time_ms, height}`` — no personal data,
no vct, no holder key.
"""

from __future__ import annotations

import secrets

from identity.errors import PayloadError
from identity.ledger_constants import ANCHOR_SALT_BYTES, ANCHORS_PER_TX_MAX
from ledger.constants import HASH_BYTES
from ledger.hashing import HashTag, hash_value


def new_salt() -> bytes:
    """A fresh anchor salt (issuer side, off-ledger)."""
    return secrets.token_bytes(ANCHOR_SALT_BYTES)


def anchor_digest(credential: str, salt: bytes) -> bytes:
    """The 32-byte anchor of ``credential`` (only its issuer-signed JWT is hashed)."""
    if not isinstance(salt, bytes) or len(salt) < ANCHOR_SALT_BYTES:
        raise PayloadError(f"anchor salt must be at least {ANCHOR_SALT_BYTES} bytes", reason="bad-salt")
    issuer_jwt = credential.split("~", 1)[0]
    return hash_value(HashTag.CREDENTIAL_ANCHOR, {"salt": salt, "credential": issuer_jwt})


def parse_digests(value: object) -> list[bytes]:
    """``anchor.put`` digests: 1..ANCHORS_PER_TX_MAX distinct 32-byte values."""
    if not isinstance(value, list) or not 0 < len(value) <= ANCHORS_PER_TX_MAX:
        raise PayloadError(f"digests must list 1..{ANCHORS_PER_TX_MAX} anchors", reason="bad-payload")
    if any(not isinstance(d, bytes) or len(d) != HASH_BYTES for d in value):
        raise PayloadError(f"each digest must be {HASH_BYTES} bytes", reason="bad-payload")
    if len(set(value)) != len(value):
        raise PayloadError("duplicate digest", reason="bad-payload")
    return list(value)


__all__ = ["anchor_digest", "new_salt", "parse_digests"]
