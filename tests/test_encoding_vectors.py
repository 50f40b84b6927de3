"""Golden vectors for the canonical encoding (tests/vectors/encoding.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.encoding import Value, decode, encode
from ledger.errors import EncodingError
from tests.vectors import generate_encoding

VECTORS = json.loads(Path(__file__).with_name("vectors").joinpath("encoding.json").read_text("utf-8"))


def value_from_json(obj: dict[str, Any]) -> Value:
    ((kind, payload),) = obj.items()
    if kind == "null":
        return None
    if kind == "bool":
        return bool(payload)
    if kind == "int":
        return int(payload)
    if kind == "bytes":
        return bytes.fromhex(payload)
    if kind == "text":
        return str(payload)
    if kind == "list":
        return [value_from_json(item) for item in payload]
    if kind == "map":
        return {key: value_from_json(item) for key, item in payload}
    raise AssertionError(f"unknown kind {kind}")


def _normalise(value: Value) -> Value:
    if isinstance(value, tuple):
        return [_normalise(item) for item in value]
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    return value


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda case: case["description"])
def test_valid_vector_encodes_to_exact_bytes_and_decodes_back(case: dict[str, Any]) -> None:
    value = value_from_json(case["value"])
    raw = bytes.fromhex(case["hex"])
    assert encode(value) == raw
    assert decode(raw) == _normalise(value)


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda case: case["description"])
def test_invalid_vector_is_rejected_by_decode(case: dict[str, Any]) -> None:
    with pytest.raises(EncodingError) as info:
        decode(bytes.fromhex(case["hex"]))
    assert info.value.reason == "non-canonical-encoding"


def test_vector_file_matches_its_generator() -> None:
    assert generate_encoding.build() == VECTORS


def test_vector_file_covers_rfc8949_examples_and_each_rejection_class() -> None:
    descriptions = " ".join(case["description"] for case in VECTORS["invalid"])
    for feature in ("float", "tag", "indefinite", "non-shortest", "unsorted", "duplicate",
                    "map key", "trailing", "truncated", "UTF-8", "deeper"):
        assert feature in descriptions
    assert sum(case["description"].startswith("rfc8949") for case in VECTORS["valid"]) >= 30
