"""The layout of the authenticated state: which key holds what.

State keys are UTF-8 paths with a fixed first segment per kind; values are
canonical encodings (:mod:`ledger.encoding`). Keeping the layout in one module
lets the executor, the API and the light client agree on where a fact lives,
and lets a reviewer see at a glance that no personal data has a place here.

==========================  ==========================================
key                         value
==========================  ==========================================
``gov/trustees``            {"keys": [jwk...], "threshold": k}
``gov/policy``              policy map (see :mod:`ledger.genesis`)
``valset/current``          validator set (list) certifying the next block
``valset/pending``          list of {"height": h, "set": [...]} changes
``did/<did>``               DID record (document, history pointer)
``did/<did>#v<n>``          DID document version n
``issuer/<did>``            accreditation record (status, allowed vct)
``service/<did>``           registered service (names, purpose, claims it may ask)
``vct/<vct>``               credential type definition
``anchor/<hex digest>``     credential anchor (issuer, time)
``status/<list id>``        token status list (bits, compressed list)
``note/<sender>``           test transactions (devnet load only)
==========================  ==========================================
"""

from __future__ import annotations

from ledger.constants import STATE_KEY_BYTES_MAX
from ledger.errors import TransactionError

TRUSTEES = b"gov/trustees"
POLICY = b"gov/policy"
VALSET_CURRENT = b"valset/current"
VALSET_PENDING = b"valset/pending"


def _key(kind: str, name: str) -> bytes:
    key = f"{kind}/{name}".encode()
    if len(key) > STATE_KEY_BYTES_MAX:
        raise TransactionError(f"state key for {kind} too long", reason="key-too-long")
    return key


def did_key(did: str) -> bytes:
    return _key("did", did)


def did_version_key(did: str, version: int) -> bytes:
    return _key("did", f"{did}#v{version}")


def issuer_key(did: str) -> bytes:
    return _key("issuer", did)


def service_key(did: str) -> bytes:
    return _key("service", did)


def vct_key(vct: str) -> bytes:
    return _key("vct", vct)


def anchor_key(digest_hex: str) -> bytes:
    return _key("anchor", digest_hex)


def status_list_key(list_id: str) -> bytes:
    return _key("status", list_id)


def note_key(sender: str) -> bytes:
    return _key("note", sender)


__all__ = [
    "POLICY",
    "TRUSTEES",
    "VALSET_CURRENT",
    "VALSET_PENDING",
    "anchor_key",
    "did_key",
    "did_version_key",
    "issuer_key",
    "note_key",
    "service_key",
    "status_list_key",
    "vct_key",
]
