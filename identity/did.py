"""did:imi — identifiers, records and DID documents.

Identifier
    ``did:imi:<suffix>`` with ``suffix = base58btc(hash_value(KEY_COMMITMENT,
    {"method": "did:imi", "inception_jwk": jwk, "next_key_commitment": c}))``:
    32 bytes of SHA-256 under our tagged hashing, in base58btc (Bitcoin alphabet,
    no multibase prefix) because it has no characters that need escaping in URLs,
    state keys or DID URLs (``#``, ``/``, ``-``, ``_``). The identifier binds the
    inception key *and* the first next-key commitment, so nobody can register the
    same inception key with a different pre-rotation commitment.

Pre-rotation (KERI-style)
    ``next_key_commitment = hash_value(KEY_COMMITMENT, next public JWK)``. A
    rotation reveals the next key, which must hash to the commitment and must sign
    the rotation; it commits to a new next key at the same time. A thief holding
    only the current key therefore cannot rotate to a key of its own.

Record (state ``did/<did>``; each version also at ``did/<did>#v<n>``)
    ``{did, version, status, controller_key, keys, next_key_commitment, services,
    created_ms, updated_ms, created_height, updated_height, via, tx}`` — keys are
    ``{id, jwk, purposes}``; ``controller_key`` is the id of the key that signs
    updates. Rotation and deactivation are signed by the committed next key (a
    thief of the current key can neither take the DID nor destroy it). Lifecycle:
    ``active → deactivated`` (final).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from identity.errors import PayloadError, TransitionError
from identity.ledger_constants import (
    DID_KEYS_MAX,
    DID_PREFIX,
    DID_SERVICES_MAX,
    DID_SUFFIX_CHARS_MAX,
    SERVICE_ENDPOINT_CHARS_MAX,
    SERVICE_ID_CHARS_MAX,
    SERVICE_TYPE_CHARS_MAX,
)
from ledger.constants import HASH_BYTES
from ledger.encoding import Value
from ledger.errors import KeyError_
from ledger.hashing import HashTag, hash_value
from ledger.keys import PublicKey

ACTIVE = "active"
DEACTIVATED = "deactivated"

# (status before, action) -> status after. ``None`` is "no such DID yet".
DID_TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "create"): ACTIVE,
    (ACTIVE, "update"): ACTIVE,
    (ACTIVE, "rotate"): ACTIVE,
    (ACTIVE, "recover"): ACTIVE,
    (ACTIVE, "deactivate"): DEACTIVATED,
}

AUTHENTICATION = "authentication"
ASSERTION_METHOD = "assertionMethod"
PURPOSES = (AUTHENTICATION, ASSERTION_METHOD)
DID_CONTEXT = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"]

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_DID_RE = re.compile(rf"^did:imi:[1-9A-HJ-NP-Za-km-z]{{1,{DID_SUFFIX_CHARS_MAX}}}$")
_SERVICE_ID_RE = re.compile(rf"^[A-Za-z0-9._-]{{1,{SERVICE_ID_CHARS_MAX}}}$")


# --- base58btc -------------------------------------------------------------------
def b58encode(data: bytes) -> str:
    """Base58 with the Bitcoin alphabet; leading zero bytes become ``1``."""
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58_ALPHABET[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; raises :class:`ValueError` on a foreign character."""
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise ValueError(f"not base58btc: {c!r}")
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


# --- identifiers and commitments ---------------------------------------------------
def canonical_jwk(jwk: Mapping[str, Any]) -> dict[str, str]:
    """The public JWK with only its required members; raises :class:`PayloadError`."""
    try:
        return dict(PublicKey.from_jwk(jwk).to_jwk())
    except KeyError_ as exc:
        raise PayloadError(f"bad JWK: {exc}", reason="bad-key") from exc


def key_commitment(next_jwk: Mapping[str, Any]) -> bytes:
    """``hash_value(KEY_COMMITMENT, next public JWK)`` — the pre-rotation digest (32 bytes)."""
    return hash_value(HashTag.KEY_COMMITMENT, canonical_jwk(next_jwk))  # type: ignore[arg-type]


def derive_did(inception_jwk: Mapping[str, Any], next_key_commitment: bytes) -> str:
    """The did:imi bound to an inception key and its first next-key commitment."""
    digest = hash_value(HashTag.KEY_COMMITMENT, {
        "method": "did:imi",
        "inception_jwk": canonical_jwk(inception_jwk),  # type: ignore[dict-item]
        "next_key_commitment": next_key_commitment,
    })
    return DID_PREFIX + b58encode(digest)


def is_did(text: object) -> bool:
    """True iff ``text`` is syntactically a did:imi identifier."""
    return isinstance(text, str) and bool(_DID_RE.match(text))


def check_did(text: object, field: str = "did") -> str:
    if not is_did(text):
        raise PayloadError(f"{field} is not a did:imi identifier", reason="bad-did")
    return text  # type: ignore[return-value]


def check_commitment(value: object, field: str = "next_key_commitment") -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_BYTES:
        raise PayloadError(f"{field} must be {HASH_BYTES} bytes", reason="bad-commitment")
    return value


def transition(status: str | None, action: str) -> str:
    """Next DID status for ``action``; raises :class:`TransitionError` if the table forbids it."""
    after = DID_TRANSITIONS.get((status, action))
    if after is None:
        reason = "did-deactivated" if status == DEACTIVATED else (
            "did-exists" if action == "create" else "did-not-found" if status is None
            else "invalid-transition")
        raise TransitionError(f"DID {status or 'absent'}: cannot {action}", reason=reason)
    return after


# --- payload pieces -------------------------------------------------------------------
def parse_services(value: object) -> list[Value]:
    """Validate a service list ``[{id, type, endpoint}]``; ids unique."""
    if not isinstance(value, list) or len(value) > DID_SERVICES_MAX:
        raise PayloadError(f"services must be a list of at most {DID_SERVICES_MAX}", reason="bad-services")
    out: list[Value] = []
    ids: set[str] = set()
    for svc in value:
        if not isinstance(svc, dict) or set(svc) != {"id", "type", "endpoint"}:
            raise PayloadError("service must be {id, type, endpoint}", reason="bad-services")
        sid, stype, endpoint = svc["id"], svc["type"], svc["endpoint"]
        if not (isinstance(sid, str) and _SERVICE_ID_RE.match(sid) and sid not in ids):
            raise PayloadError("service id must be a unique fragment", reason="bad-services")
        if not (isinstance(stype, str) and 0 < len(stype) <= SERVICE_TYPE_CHARS_MAX):
            raise PayloadError("service type empty or too long", reason="bad-services")
        if not (isinstance(endpoint, str) and 0 < len(endpoint) <= SERVICE_ENDPOINT_CHARS_MAX
                and re.match(r"^[a-z][a-z0-9+.-]*:\S+$", endpoint)):
            raise PayloadError("service endpoint must be a URI", reason="bad-services")
        ids.add(sid)
        out.append({"id": sid, "type": stype, "endpoint": endpoint})
    return out


def key_entry(jwk: Mapping[str, Any], purposes: object = PURPOSES) -> dict[str, Value]:
    """A record key entry ``{id, jwk, purposes}`` with the RFC 7638 thumbprint as id."""
    public = canonical_jwk(jwk)
    if (not isinstance(purposes, (list, tuple)) or not purposes
            or len(set(purposes)) != len(purposes) or not set(purposes) <= set(PURPOSES)):
        raise PayloadError(f"purposes must be a non-empty subset of {PURPOSES}", reason="bad-keys")
    return {"id": PublicKey.from_jwk(public).key_id, "jwk": public,  # type: ignore[dict-item]
            "purposes": [p for p in PURPOSES if p in purposes]}


def parse_extra_keys(value: object, controller_id: str) -> list[Value]:
    """Validate extra keys ``[{jwk, purposes}]`` (not the controller key; ids unique)."""
    if not isinstance(value, list) or len(value) > DID_KEYS_MAX - 1:
        raise PayloadError(f"keys must be a list of at most {DID_KEYS_MAX - 1}", reason="bad-keys")
    out: list[Value] = []
    ids = {controller_id}
    for item in value:
        if not isinstance(item, dict) or set(item) != {"jwk", "purposes"}:
            raise PayloadError("key must be {jwk, purposes}", reason="bad-keys")
        jwk = item["jwk"]
        if not isinstance(jwk, dict):
            raise PayloadError("key jwk must be a map", reason="bad-keys")
        entry = key_entry(jwk, item["purposes"])
        if entry["id"] in ids:
            raise PayloadError("duplicate key in DID document", reason="bad-keys")
        ids.add(entry["id"])  # type: ignore[arg-type]
        out.append(entry)
    return out


# --- records ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DidRecord:
    """A read view over a DID record value (the stored form is the dict)."""

    value: dict[str, Any]

    @property
    def did(self) -> str:
        return str(self.value["did"])

    @property
    def status(self) -> str:
        return str(self.value["status"])

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def version(self) -> int:
        return int(self.value["version"])

    @property
    def next_key_commitment(self) -> bytes:
        return bytes(self.value["next_key_commitment"])

    def controller_key(self) -> PublicKey:
        for entry in self.value["keys"]:
            if entry["id"] == self.value["controller_key"]:
                return PublicKey.from_jwk(entry["jwk"])
        raise AssertionError("record without its controller key")

    def keys_for(self, purpose: str) -> dict[str, PublicKey]:
        """Key id → key for every key with ``purpose`` (empty if deactivated)."""
        if not self.active:
            return {}
        return {e["id"]: PublicKey.from_jwk(e["jwk"]) for e in self.value["keys"]
                if purpose in e["purposes"]}


def document(record: Mapping[str, Any]) -> dict[str, Any]:
    """The DID document (W3C DID Core, JsonWebKey2020) of a record, as JSON."""
    did = record["did"]
    doc: dict[str, Any] = {"@context": list(DID_CONTEXT), "id": did, "controller": did}
    if record["status"] != ACTIVE:
        doc["verificationMethod"] = []
        return doc
    doc["verificationMethod"] = [
        {"id": f"{did}#{e['id']}", "type": "JsonWebKey2020", "controller": did,
         "publicKeyJwk": dict(e["jwk"])}
        for e in record["keys"]
    ]
    for purpose in PURPOSES:
        doc[purpose] = [f"{did}#{e['id']}" for e in record["keys"] if purpose in e["purposes"]]
    if record["services"]:
        doc["service"] = [{"id": f"{did}#{s['id']}", "type": s["type"], "serviceEndpoint": s["endpoint"]}
                          for s in record["services"]]
    return doc


def resolution(record: Mapping[str, Any]) -> dict[str, Any]:
    """DID resolution result: ``{didDocument, didDocumentMetadata}`` (DID Core §7.1)."""
    return {
        "didDocument": document(record),
        "didDocumentMetadata": {
            "versionId": str(record["version"]),
            "deactivated": record["status"] == DEACTIVATED,
            "created_ms": record["created_ms"],
            "updated_ms": record["updated_ms"],
            "created_height": record["created_height"],
            "updated_height": record["updated_height"],
            "nextKeyCommitment": bytes(record["next_key_commitment"]).hex(),
        },
    }


__all__ = [
    "ACTIVE",
    "ASSERTION_METHOD",
    "AUTHENTICATION",
    "DEACTIVATED",
    "DID_TRANSITIONS",
    "DidRecord",
    "b58decode",
    "b58encode",
    "canonical_jwk",
    "check_did",
    "derive_did",
    "document",
    "is_did",
    "key_commitment",
    "key_entry",
    "parse_extra_keys",
    "parse_services",
    "resolution",
    "transition",
]
