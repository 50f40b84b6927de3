"""JSON forms of ledger values for the API and CLI.

Canonical bytes are what get hashed and signed; JSON is only a transport form.
Hashes travel as lowercase hex, signatures and opaque bytes as base64url.
Decoding is strict: wrong types and unknown fields raise typed errors.
"""

from __future__ import annotations

from typing import Any, Mapping

from ledger.constants import HASH_BYTES
from ledger.errors import EncodingError, UnknownFieldError


def hex_hash(value: bytes) -> str:
    return value.hex()


def parse_hex_hash(text: object, field: str) -> bytes:
    """Parse a 32-byte hash given as 64 lowercase hex characters."""
    if not isinstance(text, str) or len(text) != 2 * HASH_BYTES:
        raise EncodingError(f"{field}: expected {2 * HASH_BYTES} hex characters", reason="bad-field")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise EncodingError(f"{field}: not hex", reason="bad-field") from exc
    if raw.hex() != text:
        raise EncodingError(f"{field}: hex must be lowercase", reason="bad-field")
    return raw


def require_fields(
    obj: object, required: frozenset[str], optional: frozenset[str] = frozenset(), *, what: str
) -> Mapping[str, Any]:
    """Check that ``obj`` is a mapping with exactly the allowed fields."""
    if not isinstance(obj, Mapping):
        raise EncodingError(f"{what}: expected an object", reason="bad-field")
    keys = set(obj.keys())
    unknown = keys - required - optional
    if unknown:
        raise UnknownFieldError(f"{what}: unknown field(s) {sorted(unknown)}")
    missing = required - keys
    if missing:
        raise EncodingError(f"{what}: missing field(s) {sorted(missing)}", reason="missing-field")
    return obj


def expect(value: object, kind: type | tuple[type, ...], field: str) -> Any:
    """Return ``value`` if it is of ``kind`` (bool is never accepted as int)."""
    if isinstance(value, bool) and kind is int:
        raise EncodingError(f"{field}: expected int", reason="bad-field")
    if not isinstance(value, kind):
        raise EncodingError(f"{field}: wrong type", reason="bad-field")
    return value


__all__ = ["expect", "hex_hash", "parse_hex_hash", "require_fields"]
