"""Generate tests/vectors/encoding.json: canonical encoding golden vectors.

Run ``python -m tests.vectors.generate_encoding`` from the repository root; the
output is deterministic, so re-running must leave the file unchanged.

Positive cases are RFC 8949 Appendix A examples that fall in our data model,
plus boundaries of our own; every one is checked against ``ledger.encoding``
before it is written. Negative cases are byte strings ``decode`` must reject,
each with the feature of CBOR (or of our profile) that it violates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.encoding import Value, decode, encode
from ledger.errors import EncodingError

OUTPUT = Path(__file__).with_name("encoding.json")

# (description, value, expected hex). Values are Python literals; bytes stay bytes.
POSITIVE: list[tuple[str, Value, str]] = [
    ("rfc8949 A: 0", 0, "00"),
    ("rfc8949 A: 1", 1, "01"),
    ("rfc8949 A: 10", 10, "0a"),
    ("rfc8949 A: 23", 23, "17"),
    ("rfc8949 A: 24", 24, "1818"),
    ("rfc8949 A: 25", 25, "1819"),
    ("rfc8949 A: 100", 100, "1864"),
    ("rfc8949 A: 1000", 1000, "1903e8"),
    ("rfc8949 A: 1000000", 1000000, "1a000f4240"),
    ("rfc8949 A: 1000000000000", 1000000000000, "1b000000e8d4a51000"),
    ("rfc8949 A: 2**64-1", 18446744073709551615, "1bffffffffffffffff"),
    ("rfc8949 A: -2**64", -18446744073709551616, "3bffffffffffffffff"),
    ("rfc8949 A: -1", -1, "20"),
    ("rfc8949 A: -10", -10, "29"),
    ("rfc8949 A: -100", -100, "3863"),
    ("rfc8949 A: -1000", -1000, "3903e7"),
    ("rfc8949 A: false", False, "f4"),
    ("rfc8949 A: true", True, "f5"),
    ("rfc8949 A: null", None, "f6"),
    ("rfc8949 A: h''", b"", "40"),
    ("rfc8949 A: h'01020304'", bytes.fromhex("01020304"), "4401020304"),
    ("rfc8949 A: \"\"", "", "60"),
    ("rfc8949 A: \"a\"", "a", "6161"),
    ("rfc8949 A: \"IETF\"", "IETF", "6449455446"),
    ("rfc8949 A: \"\\\"\\\\\"", "\"\\", "62225c"),
    ("rfc8949 A: \"\\u00fc\"", "\u00fc", "62c3bc"),
    ("rfc8949 A: \"\\u6c34\"", "\u6c34", "63e6b0b4"),
    ("rfc8949 A: \"\\ud800\\udd51\"", "\U00010151", "64f0908591"),
    ("rfc8949 A: []", [], "80"),
    ("rfc8949 A: [1, 2, 3]", [1, 2, 3], "83010203"),
    ("rfc8949 A: [1, [2, 3], [4, 5]]", [1, [2, 3], [4, 5]], "8301820203820405"),
    (
        "rfc8949 A: [1..25] (length head 0x98 0x19)",
        list(range(1, 26)),
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
    ),
    ("rfc8949 A: {}", {}, "a0"),
    ("rfc8949 A: {\"a\": 1, \"b\": [2, 3]}", {"a": 1, "b": [2, 3]}, "a26161016162820203"),
    ("rfc8949 A: [\"a\", {\"b\": \"c\"}]", ["a", {"b": "c"}], "826161a161626163"),
    (
        "rfc8949 A: {\"a\": \"A\", ..., \"e\": \"E\"}",
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
        "a56161614161626142616361436164614461656145",
    ),
    ("ours: 255 (1-byte argument max)", 255, "18ff"),
    ("ours: 256 (2-byte argument min)", 256, "190100"),
    ("ours: 65536 (4-byte argument min)", 65536, "1a00010000"),
    ("ours: 2**32 (8-byte argument min)", 2**32, "1b0000000100000000"),
    ("ours: -24 (last 1-byte negative)", -24, "37"),
    ("ours: -25", -25, "3818"),
    ("ours: 24-byte string (1-byte length head)", b"\x00" * 24, "5818" + "00" * 24),
    (
        "ours: map keys sorted by encoded bytes, shorter key first",
        {"bb": 2, "a": 1, "c": 3},
        "a3616101616303626262" + "02",
    ),
    ("ours: tuple encodes as list", (1, "x"), "82016178"),
]

# (description, hex that decode must reject).
NEGATIVE: list[tuple[str, str]] = [
    ("half-precision float 1.0", "f93c00"),
    ("double-precision float 1.1", "fb3ff199999999999a"),
    ("simple value 16", "f0"),
    ("undefined (simple 23)", "f7"),
    ("tag 1 (epoch time)", "c11a514b67b0"),
    ("tag 2 (bignum)", "c249010000000000000000"),
    ("tag 24 (embedded CBOR)", "d81844bf010203"),
    ("indefinite-length array", "9fff"),
    ("indefinite-length array with items", "9f01820203ff"),
    ("indefinite-length byte string", "5f42010243030405ff"),
    ("indefinite-length text string", "7f657374726561646d696e67ff"),
    ("indefinite-length map", "bf6161016162f5ff"),
    ("break outside indefinite item", "ff"),
    ("non-shortest int 23 in 1 byte", "1817"),
    ("non-shortest int 0 in 2 bytes", "190000"),
    ("non-shortest int 255 in 2 bytes", "1900ff"),
    ("non-shortest int in 4 bytes", "1a0000ffff"),
    ("non-shortest int in 8 bytes", "1b00000000ffffffff"),
    ("non-shortest negative int", "3817"),
    ("non-shortest byte string length", "580101"),
    ("non-shortest array length", "980101"),
    ("reserved additional info 28", "1c"),
    ("reserved additional info 30", "3e"),
    ("unsorted map keys", "a2616201616102"),
    ("shorter key after longer key", "a262626201616102"),
    ("duplicate map keys", "a2616101616102"),
    ("integer map key", "a10102"),
    ("byte string map key", "a1416101"),
    ("null map key", "a1f601"),
    ("trailing byte after value", "0000"),
    ("trailing byte after array", "820102ff"),
    ("empty input", ""),
    ("truncated 2-byte integer", "1903"),
    ("truncated byte string", "4401020304"[:-2]),
    ("truncated array", "830102"),
    ("truncated map value", "a16161"),
    ("invalid UTF-8 in text", "62c328"),
    ("UTF-8 encoded surrogate in text", "63eda080"),
    ("overlong UTF-8 in text", "62c0af"),
    ("nesting deeper than the limit (40 arrays)", "81" * 40 + "00"),
]


def value_to_json(value: Value) -> Any:
    """Typed JSON form that keeps bytes, text, big ints and lists apart."""
    if value is None:
        return {"null": None}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, (list, tuple)):
        return {"list": [value_to_json(item) for item in value]}
    if isinstance(value, dict):
        return {"map": [[key, value_to_json(item)] for key, item in value.items()]}
    raise TypeError(type(value).__name__)


def build() -> dict[str, Any]:
    """Check every case against the implementation and return the vector document."""
    positive = []
    for description, value, expected in POSITIVE:
        got = encode(value).hex()
        if got != expected:
            raise SystemExit(f"{description}: encode gives {got}, expected {expected}")
        decoded = decode(bytes.fromhex(expected))
        if encode(decoded).hex() != expected:
            raise SystemExit(f"{description}: decode/encode does not round-trip")
        positive.append({"description": description, "value": value_to_json(value), "hex": expected})
    negative = []
    for description, bad in NEGATIVE:
        try:
            decode(bytes.fromhex(bad))
        except EncodingError:
            negative.append({"description": description, "hex": bad})
            continue
        raise SystemExit(f"{description}: decode accepted {bad}")
    return {
        "about": "imi canonical encoding (deterministic CBOR subset); generated by "
        "tests/vectors/generate_encoding.py",
        "valid": positive,
        "invalid": negative,
    }


def main() -> None:
    OUTPUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
