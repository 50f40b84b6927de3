"""Canonical encoding: the only code that turns values into bytes for hashing or signing.

The format is the *core deterministic encoding* of CBOR (RFC 8949 §4.2.1)
restricted to a small data model:

=============  ==========================  ===========================
Python         CBOR                        notes
=============  ==========================  ===========================
``None``       simple 22 (0xf6)
``bool``       simple 20/21 (0xf4/0xf5)
``int``        major 0 / 1                 -2**64 .. 2**64-1
``bytes``      major 2
``str``        major 3                     UTF-8, no lone surrogates
``list``       major 4                     tuples encode as lists
``dict``       major 5                     text keys only, sorted by
                                           their encoded bytes
=============  ==========================  ===========================

Floats, tags, indefinite lengths, non-shortest heads, unsorted or duplicate
map keys and trailing bytes are all rejected by :func:`decode`, so that
``encode(decode(b)) == b`` for every accepted ``b``: one value, one byte string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ledger.constants import (
    ENCODING_BYTES_MAX,
    ENCODING_DEPTH_MAX,
    ENCODING_INT_MAX,
    ENCODING_INT_MIN,
    ENCODING_ITEMS_MAX,
    ENCODING_MAP_PLAN_KEYS_MAX,
    ENCODING_MAP_PLANS_MAX,
)
from ledger.errors import EncodingError

Value = Union[None, bool, int, bytes, str, list["Value"], tuple["Value", ...], dict[str, "Value"], "Canonical"]

_MAJOR_UINT = 0
_MAJOR_NEGINT = 1
_MAJOR_BYTES = 2
_MAJOR_TEXT = 3
_MAJOR_ARRAY = 4
_MAJOR_MAP = 5
_FALSE = 0xF4
_TRUE = 0xF5
_NULL = 0xF6


@dataclass(frozen=True, slots=True)
class Canonical:
    """The canonical bytes of a value that was already encoded (or decoded), spliced
    verbatim by :func:`encode` so a large value (a transaction inside a block) is not
    walked again.

    Preconditions: ``data`` is exactly what ``encode(v)`` returns for some value
    ``v`` (e.g. bytes :func:`decode` accepted), and ``depth`` is ``v``'s nesting
    depth (0 for a scalar, 1 + the deepest item's depth for a list or map), so the
    nesting limit is enforced where the bytes are spliced exactly as if ``v`` were
    encoded there.
    """

    data: bytes
    depth: int


def _head(major: int, argument: int) -> bytes:
    """Shortest-form CBOR head for ``argument`` (0 <= argument < 2**64)."""
    top = major << 5
    if argument < 24:
        return _SHORT_HEADS[top | argument]
    if argument < 0x100:
        return bytes((top | 24, argument))
    if argument < 0x10000:
        return bytes((top | 25,)) + argument.to_bytes(2, "big")
    if argument < 0x100000000:
        return bytes((top | 26,)) + argument.to_bytes(4, "big")
    return bytes((top | 27,)) + argument.to_bytes(8, "big")


# One-byte heads (argument < 24), indexed by the initial byte.
_SHORT_HEADS: tuple[bytes, ...] = tuple(bytes((initial,)) for initial in range(256))


def encode(value: Value) -> bytes:
    """Encode ``value`` canonically. Raises :class:`EncodingError` on any value outside the model."""
    if type(value) is Canonical:
        return value.data
    out = bytearray()
    _encode_into(out, value, 0)
    if len(out) > ENCODING_BYTES_MAX:
        raise EncodingError(f"encoded value is {len(out)} bytes, limit {ENCODING_BYTES_MAX}")
    return bytes(out)


def _encode_text(value: str) -> bytes:
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError("string is not valid UTF-8 (lone surrogate)") from exc
    return _head(_MAJOR_TEXT, len(raw)) + raw


def _encode_into(out: bytearray, value: Value, depth: int) -> None:
    if depth > ENCODING_DEPTH_MAX:
        raise EncodingError(f"nesting deeper than {ENCODING_DEPTH_MAX}")
    # Exact-type fast paths first (the common case); subclasses fall through to the
    # isinstance chain below, which gives the same bytes.
    kind = type(value)
    if kind is str:
        out += _encode_text(value)  # type: ignore[arg-type]
    elif kind is bytes:
        out += _head(_MAJOR_BYTES, len(value))  # type: ignore[arg-type]
        out += value  # type: ignore[arg-type]
    elif kind is int:
        if not ENCODING_INT_MIN <= value <= ENCODING_INT_MAX:  # type: ignore[operator]
            raise EncodingError(f"integer out of range: {value!r}")
        if value >= 0:  # type: ignore[operator]
            out += _head(_MAJOR_UINT, value)  # type: ignore[arg-type]
        else:
            out += _head(_MAJOR_NEGINT, -1 - value)  # type: ignore[operator]
    elif kind is dict:
        _encode_map(out, value, depth)  # type: ignore[arg-type]
    elif kind is list or kind is tuple:
        _encode_list(out, value, depth)  # type: ignore[arg-type]
    elif kind is Canonical:
        if depth + value.depth > ENCODING_DEPTH_MAX:  # type: ignore[union-attr]
            raise EncodingError(f"nesting deeper than {ENCODING_DEPTH_MAX}")
        out += value.data  # type: ignore[union-attr]
    # bool before int: bool is a subclass of int.
    elif value is None:
        out.append(_NULL)
    elif value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += _head(_MAJOR_BYTES, len(raw))
        out += raw
    elif isinstance(value, str):
        out += _encode_text(value)
    elif isinstance(value, (list, tuple)):
        _encode_list(out, value, depth)
    elif isinstance(value, dict):
        _encode_map(out, value, depth)
    else:
        raise EncodingError(f"type {type(value).__name__} has no canonical encoding")


def _encode_list(out: bytearray, value: list[Value] | tuple[Value, ...], depth: int) -> None:
    if len(value) > ENCODING_ITEMS_MAX:
        raise EncodingError(f"list has more than {ENCODING_ITEMS_MAX} items")
    out += _head(_MAJOR_ARRAY, len(value))
    for item in value:
        _encode_into(out, item, depth + 1)


def _encode_map(out: bytearray, value: dict[str, Value], depth: int) -> None:
    if len(value) > ENCODING_ITEMS_MAX:
        raise EncodingError(f"map has more than {ENCODING_ITEMS_MAX} entries")
    if depth + 1 > ENCODING_DEPTH_MAX and value:
        raise EncodingError(f"nesting deeper than {ENCODING_DEPTH_MAX}")
    keys = tuple(value)
    plan = _MAP_PLANS.get(keys)
    if plan is None:
        plan = _map_plan(keys)
    out += _head(_MAJOR_MAP, len(plan))
    for key_bytes, key in plan:
        out += key_bytes
        _encode_into(out, value[key], depth + 1)


def _map_plan(keys: tuple[str, ...]) -> tuple[tuple[bytes, str], ...]:
    """Each key's encoding, in canonical order (by those bytes; distinct keys encode
    distinctly). Maps of one schema share their keys, so plans of small maps are
    remembered (``ENCODING_MAP_PLANS_MAX``; once full, new ones are computed each time)."""
    entries: list[tuple[bytes, str]] = []
    for key in keys:
        if not isinstance(key, str):
            raise EncodingError(f"map key must be a string, got {type(key).__name__}")
        entries.append((_encode_text(key), key))
    entries.sort(key=_first)
    plan = tuple(entries)
    if len(keys) <= ENCODING_MAP_PLAN_KEYS_MAX and len(_MAP_PLANS) < ENCODING_MAP_PLANS_MAX \
            and all(type(key) is str for key in keys):
        _MAP_PLANS[keys] = plan
    return plan


# The memo of _map_plan, a pure function (a key tuple in, an immutable plan out), as
# functools.lru_cache would be: it is the function's own, and it changes no result.
# Not a BoundedLRU: it sits on the hottest path of the ledger (every map encoded for
# hashing or signing, consensus included), where one inline dict lookup is what a
# hit may cost; maps of one schema share few key sets, so it fills to its bound
# (ENCODING_MAP_PLANS_MAX) and then stops growing instead of evicting.
_MAP_PLANS: dict[tuple[str, ...], tuple[tuple[bytes, str], ...]] = {}


def _first(entry: tuple[bytes, object]) -> bytes:
    return entry[0]


def nesting_depth(value: Value) -> int:
    """The nesting depth :class:`Canonical` expects: 0 for a scalar or an empty list or
    map, else 1 + the deepest item's depth. Does not validate ``value``."""
    if type(value) is Canonical:
        return value.depth
    if isinstance(value, dict):
        return 1 + max(map(nesting_depth, value.values())) if value else 0
    if isinstance(value, (list, tuple)):
        return 1 + max(map(nesting_depth, value)) if value else 0
    return 0


def _input_bytes(data: object) -> bytes:
    """``data`` as bytes, if it is bytes-like and within ``ENCODING_BYTES_MAX``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError("decode expects bytes")
    raw = bytes(data)
    if len(raw) > ENCODING_BYTES_MAX:
        raise EncodingError(f"input is {len(raw)} bytes, limit {ENCODING_BYTES_MAX}")
    return raw


def _check_consumed(raw: bytes, offset: int) -> None:
    if offset != len(raw):
        raise EncodingError(f"{len(raw) - offset} trailing bytes")


def decode(data: bytes) -> Value:
    """Decode canonical bytes. Raises :class:`EncodingError` unless ``data`` is exactly one canonical value."""
    raw = _input_bytes(data)
    value, offset = _Decoder(raw).value(0, 0)
    _check_consumed(raw, offset)
    return value


def decode_map_entries(data: bytes) -> tuple[dict[str, Value], dict[str, tuple[int, int]]]:
    """Decode canonical bytes holding one map, as :func:`decode` does (same checks), and
    also return where each top-level entry (key and value) lies in ``data``: ``[start, end)``."""
    raw = _input_bytes(data)
    decoder = _Decoder(raw)
    major, count, offset = decoder._head(0)
    if major != _MAJOR_MAP:
        raise EncodingError("expected a map")
    spans: dict[str, tuple[int, int]] = {}
    value, offset = decoder._map(offset, count, 0, spans)
    _check_consumed(raw, offset)
    return value, spans  # type: ignore[return-value]


def map_without(data: bytes, spans: dict[str, tuple[int, int]], key: str) -> bytes:
    """The canonical encoding of the map ``data`` (with the ``spans`` that
    :func:`decode_map_entries` gave) less its entry ``key``: the other entries' bytes
    are spliced as they are (still in canonical order) under a head one entry shorter."""
    start, end = spans[key]
    first = min(s for s, _ in spans.values())
    return _head(_MAJOR_MAP, len(spans) - 1) + data[first:start] + data[end:]


class _Decoder:
    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def _head(self, offset: int) -> tuple[int, int, int]:
        """Return (major, argument, next offset); rejects non-shortest and indefinite forms."""
        if offset >= self.size:
            raise EncodingError("truncated input")
        initial = self.data[offset]
        info = initial & 0x1F
        offset += 1
        if info < 24:
            return initial >> 5, info, offset
        if info > 27:
            raise EncodingError(f"unsupported additional info {info} (indefinite length or reserved)")
        end = offset + _HEAD_WIDTHS[info - 24]
        if end > self.size:
            raise EncodingError("truncated input")
        argument = int.from_bytes(self.data[offset:end], "big")
        if argument < _HEAD_MINIMUMS[info - 24]:
            raise EncodingError("integer or length not in shortest form")
        return initial >> 5, argument, end

    def value(self, offset: int, depth: int) -> tuple[Value, int]:
        if depth > ENCODING_DEPTH_MAX:
            raise EncodingError(f"nesting deeper than {ENCODING_DEPTH_MAX}")
        if offset >= self.size:
            raise EncodingError("truncated input")
        initial = self.data[offset]
        if initial == _NULL:
            return None, offset + 1
        if initial == _TRUE:
            return True, offset + 1
        if initial == _FALSE:
            return False, offset + 1
        info = initial & 0x1F
        if info < 24:  # the common one-byte head, inline
            major, argument, offset = initial >> 5, info, offset + 1
        else:
            major, argument, offset = self._head(offset)
        if major == _MAJOR_TEXT or major == _MAJOR_BYTES:
            end = offset + argument
            if end > self.size:
                raise EncodingError("truncated input")
            raw = self.data[offset:end]
            if major == _MAJOR_BYTES:
                return raw, end
            try:
                return raw.decode("utf-8"), end
            except UnicodeDecodeError as exc:
                raise EncodingError("text is not valid UTF-8") from exc
        if major == _MAJOR_UINT:
            return argument, offset
        if major == _MAJOR_MAP:
            return self._map(offset, argument, depth)
        if major == _MAJOR_ARRAY:
            if argument > ENCODING_ITEMS_MAX:
                raise EncodingError(f"list has more than {ENCODING_ITEMS_MAX} items")
            items: list[Value] = []
            append = items.append
            for _ in range(argument):
                item, offset = self.value(offset, depth + 1)
                append(item)
            return items, offset
        if major == _MAJOR_NEGINT:
            return -1 - argument, offset
        raise EncodingError(f"unsupported CBOR major type {major} (tags and floats are not canonical here)")

    def _map(self, offset: int, count: int, depth: int,
             spans: dict[str, tuple[int, int]] | None = None) -> tuple[Value, int]:
        if count > ENCODING_ITEMS_MAX:
            raise EncodingError(f"map has more than {ENCODING_ITEMS_MAX} entries")
        result: dict[str, Value] = {}
        previous: bytes | None = None
        data = self.data
        size = self.size
        for _ in range(count):
            key_start = offset
            initial = data[offset] if offset < size else -1
            if 0x60 <= initial <= 0x77:  # the usual key: text shorter than 24 bytes, inline
                offset += 1 + initial - 0x60
                if offset > size:
                    raise EncodingError("truncated input")
                try:
                    key = data[key_start + 1:offset].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise EncodingError("text is not valid UTF-8") from exc
            else:
                other, offset = self.value(offset, depth + 1)
                if type(other) is not str:
                    raise EncodingError("map key must be text")
                key = other
            key_bytes = data[key_start:offset]
            if previous is not None:
                if key_bytes == previous:
                    raise EncodingError(f"duplicate map key {key!r}")
                if key_bytes < previous:
                    raise EncodingError("map keys not in canonical order")
            previous = key_bytes
            result[key], offset = self.value(offset, depth + 1)
            if spans is not None:
                spans[key] = (key_start, offset)
        return result, offset


# Additional info 24..27: the argument's width in bytes, and the least argument
# that needs that width (a smaller one is not in shortest form).
_HEAD_WIDTHS = (1, 2, 4, 8)
_HEAD_MINIMUMS = (24, 0x100, 0x10000, 0x100000000)


__all__ = ["Canonical", "Value", "decode", "decode_map_entries", "encode", "map_without", "nesting_depth"]
