"""Token Status List (draft-ietf-oauth-status-list): packing, encoding, lifecycle.

A status list is a byte array in which entry ``i`` occupies ``bits`` bits; entry 0
is the least significant ``bits`` of byte 0, entry 1 the next ones, and so on
(the draft's order: bit 0 of byte 0 is index 0). Its transport form is the
DEFLATE stream with a zlib header (RFC 1950) of that array, base64url without
padding: ``{"bits": 1, "lst": "eNrbuRgAAhcBXQ"}``.

The ledger stores the *uncompressed* array (so that every validator computes the
same bytes regardless of its zlib build); the compressed form is produced on the
way out, by :func:`encode_lst`.

Lifecycle of one entry (a transition table): ``valid → invalid`` (revocation,
final), ``valid ↔ suspended``, ``suspended → invalid``. A 1-bit list cannot
express suspension.

Herd privacy: the issuer picks each credential's index uniformly at random among
unused ones (:func:`allocate_index`), off-ledger, so an index reveals nothing
about issuance order and one list covers many holders.
"""

from __future__ import annotations

import base64
import random
import secrets
import zlib
from collections.abc import Iterable, Mapping, Sequence

from identity.constants import STATUS_INVALID, STATUS_SUSPENDED, STATUS_VALID
from identity.errors import StatusListError
from identity.ledger_constants import (
    STATUS_ALLOCATE_DRAWS_MAX,
    STATUS_LIST_BITS,
    STATUS_LIST_ENCODED_CHARS_MAX,
    STATUS_LIST_SIZE_MAX,
    ZLIB_LEVEL,
)

STATUS_NAMES: dict[int, str] = {
    STATUS_VALID: "valid",
    STATUS_INVALID: "invalid",
    STATUS_SUSPENDED: "suspended",
}

# (from, to) moves an issuer may make on one entry; anything else is refused.
# Setting an entry to its current status is a no-op and refused too, so that a
# ledger entry never records an empty change.
STATUS_TRANSITIONS: frozenset[tuple[int, int]] = frozenset({
    (STATUS_VALID, STATUS_INVALID),
    (STATUS_VALID, STATUS_SUSPENDED),
    (STATUS_SUSPENDED, STATUS_VALID),
    (STATUS_SUSPENDED, STATUS_INVALID),
})


def check_bits(bits: int) -> None:
    """Raise :class:`StatusListError` unless ``bits`` is a supported width (1 or 2)."""
    if type(bits) is not int or bits not in STATUS_LIST_BITS:
        raise StatusListError(f"bits must be one of {STATUS_LIST_BITS}", reason="bad-bits")


def byte_length(size: int, bits: int) -> int:
    """Bytes needed for ``size`` entries of ``bits`` bits each."""
    return (size * bits + 7) // 8


def new_list(size: int, bits: int) -> bytes:
    """An all-valid list of ``size`` entries (``0 < size <= STATUS_LIST_SIZE_MAX``)."""
    check_bits(bits)
    if type(size) is not int or not 0 < size <= STATUS_LIST_SIZE_MAX:
        raise StatusListError(f"size must be 1..{STATUS_LIST_SIZE_MAX}", reason="bad-size")
    return bytes(byte_length(size, bits))


def get_status(lst: bytes, bits: int, index: int) -> int:
    """Status of entry ``index``; requires ``0 <= index < len(lst) * 8 // bits``."""
    check_bits(bits)
    per_byte = 8 // bits
    if type(index) is not int or not 0 <= index < len(lst) * per_byte:
        raise StatusListError(f"index {index} outside the list", reason="index-out-of-range")
    shift = (index % per_byte) * bits
    return (lst[index // per_byte] >> shift) & ((1 << bits) - 1)


def set_status(lst: bytes, bits: int, index: int, status: int) -> bytes:
    """A copy of ``lst`` with entry ``index`` set to ``status`` (no transition check)."""
    get_status(lst, bits, index)  # bounds
    if type(status) is not int or not 0 <= status < (1 << bits):
        raise StatusListError(f"status {status} does not fit in {bits} bit(s)", reason="bad-status")
    per_byte = 8 // bits
    shift = (index % per_byte) * bits
    mask = ((1 << bits) - 1) << shift
    out = bytearray(lst)
    out[index // per_byte] = (out[index // per_byte] & ~mask & 0xFF) | (status << shift)
    return bytes(out)


def check_transition(old: int, new: int) -> None:
    """Raise :class:`StatusListError` unless ``old → new`` is in :data:`STATUS_TRANSITIONS`."""
    if (old, new) not in STATUS_TRANSITIONS:
        reason = "status-final" if old == STATUS_INVALID else "invalid-status-transition"
        raise StatusListError(
            f"status {STATUS_NAMES.get(old, old)} → {STATUS_NAMES.get(new, new)} is not allowed",
            reason=reason,
        )


def apply_updates(lst: bytes, bits: int, updates: Iterable[tuple[int, int]]) -> bytes:
    """Apply ``(index, status)`` updates in order, each checked against the transition table."""
    for index, status in updates:
        if status not in STATUS_NAMES or (bits == 1 and status == STATUS_SUSPENDED):
            raise StatusListError(f"status {status} not allowed in a {bits}-bit list",
                                  reason="bad-status")
        check_transition(get_status(lst, bits, index), status)
        lst = set_status(lst, bits, index, status)
    return lst


def pack(statuses: Sequence[int], bits: int) -> bytes:
    """Pack a sequence of statuses (index order) into the draft's byte array."""
    check_bits(bits)
    out = bytes(byte_length(len(statuses), bits))
    for index, status in enumerate(statuses):
        if status:
            out = set_status(out, bits, index, status)
    return out


def unpack(lst: bytes, bits: int) -> list[int]:
    """All entries of ``lst`` in index order (``len(lst) * 8 // bits`` of them)."""
    check_bits(bits)
    return [get_status(lst, bits, i) for i in range(len(lst) * 8 // bits)]


def encode_lst(lst: bytes) -> str:
    """The draft's ``lst``: zlib (DEFLATE with zlib header) then base64url, unpadded."""
    return base64.urlsafe_b64encode(zlib.compress(lst, ZLIB_LEVEL)).rstrip(b"=").decode("ascii")


def decode_lst(text: str, *, max_bytes: int = STATUS_LIST_SIZE_MAX) -> bytes:
    """Inverse of :func:`encode_lst`; refuses padding, garbage and bombs over ``max_bytes``."""
    if not isinstance(text, str) or not text or len(text) > STATUS_LIST_ENCODED_CHARS_MAX:
        raise StatusListError("lst missing or too long", reason="bad-lst")
    if "=" in text:
        raise StatusListError("lst must be unpadded base64url", reason="bad-lst")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise StatusListError("lst is not base64url", reason="bad-lst") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise StatusListError("lst is not canonical base64url", reason="bad-lst")
    inflater = zlib.decompressobj()
    try:
        lst = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise StatusListError(f"lst is not zlib: {exc}", reason="bad-lst") from exc
    if len(lst) > max_bytes or inflater.unconsumed_tail:
        raise StatusListError("lst decompresses beyond the size limit", reason="bad-lst")
    if not inflater.eof or inflater.unused_data:
        raise StatusListError("lst zlib stream truncated or followed by garbage", reason="bad-lst")
    return lst


def to_json(lst: bytes, bits: int) -> dict[str, object]:
    """The draft's ``status_list`` object: ``{"bits": b, "lst": "..."}``."""
    check_bits(bits)
    return {"bits": bits, "lst": encode_lst(lst)}


def from_json(obj: Mapping[str, object]) -> tuple[bytes, int]:
    """Parse a ``status_list`` object into ``(byte array, bits)``."""
    if not isinstance(obj, Mapping) or set(obj) - {"bits", "lst", "aggregation_uri"}:
        raise StatusListError("status_list must be {bits, lst}", reason="bad-lst")
    bits = obj.get("bits")
    check_bits(bits)  # type: ignore[arg-type]
    lst = obj.get("lst")
    if not isinstance(lst, str):
        raise StatusListError("lst must be a string", reason="bad-lst")
    return decode_lst(lst), bits  # type: ignore[return-value]


def allocate_index(lst: bytes, bits: int, used: set[int], rng: random.Random | None = None) -> int:
    """Pick an unused index uniformly at random (herd privacy). Issuer-side, off-ledger.

    ``used`` holds the indices already given to credentials (the issuer's own
    record: a valid entry on the ledger does not mean the index is free). ``rng``
    defaults to a CSPRNG; pass a seeded :class:`random.Random` only in tests.
    Raises :class:`StatusListError` when the list is full.
    """
    capacity = len(lst) * 8 // bits
    if len(used) >= capacity:
        raise StatusListError("status list is full", reason="list-full")
    draw = rng.randrange if rng is not None else secrets.randbelow
    # Rejection sampling stays uniform and costs capacity / free draws on average; only
    # when that would exceed STATUS_ALLOCATE_DRAWS_MAX does an explicit scan (O(capacity),
    # ~20-35 ms for a 64-128 Ki list, under the issuer's lock) take over.
    if (capacity - len(used)) * STATUS_ALLOCATE_DRAWS_MAX >= capacity:
        while True:
            index = draw(capacity)
            if index not in used:
                return index
    free = [i for i in range(capacity) if i not in used]
    return free[draw(len(free))]


__all__ = [
    "STATUS_NAMES",
    "STATUS_TRANSITIONS",
    "allocate_index",
    "apply_updates",
    "byte_length",
    "check_bits",
    "check_transition",
    "decode_lst",
    "encode_lst",
    "from_json",
    "get_status",
    "new_list",
    "pack",
    "set_status",
    "to_json",
    "unpack",
]
