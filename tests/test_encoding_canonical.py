"""Canonical splicing: a pre-encoded value gives the bytes encoding it would, and the
nesting limit is enforced where it is spliced."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.constants import ENCODING_DEPTH_MAX
from ledger.encoding import (
    Canonical,
    Value,
    decode,
    decode_map_entries,
    encode,
    map_without,
    nesting_depth,
)
from ledger.errors import EncodingError
from ledger.keys import SigningKey
from ledger.tx import Transaction
from tests.test_encoding_roundtrip import values


def _spliced(value: Value) -> Canonical:
    return Canonical(encode(value), nesting_depth(value))


@settings(max_examples=200, deadline=None)
@given(values, st.integers(min_value=0, max_value=3))
def test_a_spliced_value_encodes_as_the_value_itself(value: Value, wraps: int) -> None:
    plain: Value = value
    spliced: Value = _spliced(value)
    for _ in range(wraps):
        plain, spliced = {"x": [plain]}, {"x": [spliced]}
    assert encode(spliced) == encode(plain)


def _nested(depth: int) -> Value:
    value: Value = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("inner", [0, 1, 5, ENCODING_DEPTH_MAX - 1, ENCODING_DEPTH_MAX])
@pytest.mark.parametrize("outer", [0, 1, 2, 7])
def test_the_nesting_limit_applies_to_spliced_values_as_to_plain_ones(inner: int, outer: int) -> None:
    plain: Value = _nested(inner)
    spliced: Value = _spliced(plain)
    for _ in range(outer):
        plain, spliced = [plain], [spliced]
    if inner + outer > ENCODING_DEPTH_MAX:
        with pytest.raises(EncodingError):
            encode(plain)
        with pytest.raises(EncodingError):
            encode(spliced)
    else:
        assert encode(spliced) == encode(plain)


def test_a_transaction_splices_as_its_value() -> None:
    key = SigningKey.generate()
    tx = Transaction.create(chain_id="imi-test", type="test.note", sender="did:imi:x",
                            payload={"deep": [[{"a": [1]}]]}, expires_at_ms=10**12).sign(key)
    canonical = Canonical(tx.to_bytes(), nesting_depth(tx.to_value()))
    assert encode({"txs": [canonical]}) == encode({"txs": [tx.to_value()]})


def _note_signed_by(payload: dict[str, Value], signers: int) -> Transaction:
    keys = [SigningKey.generate() for _ in range(signers)]
    return Transaction.create(chain_id="imi-test", type="test.note", sender="did:imi:x",
                              payload=payload, expires_at_ms=10**12).sign(*keys)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=5), st.integers(min_value=0, max_value=3))
def test_a_transactions_kept_bytes_are_the_encoding_of_its_value(payload: dict[str, Value], signers: int) -> None:
    tx = _note_signed_by(payload, signers)
    assert tx.to_bytes() == encode(tx.to_value())
    parsed = Transaction.from_bytes(tx.to_bytes())  # tuples in the payload come back as lists
    assert parsed.tx_id == tx.tx_id and parsed.to_bytes() == tx.to_bytes()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, min_size=1, max_size=6), st.data())
def test_a_map_less_one_entry_spliced_from_its_bytes_is_its_encoding(mapping: dict[str, Value],
                                                                     data: st.DataObject) -> None:
    raw = encode(mapping)
    decoded, spans = decode_map_entries(raw)
    assert decoded == decode(raw) and set(spans) == set(mapping)
    key = data.draw(st.sampled_from(sorted(mapping)))
    rest = {k: v for k, v in mapping.items() if k != key}
    assert map_without(raw, spans, key) == encode(rest)


def test_map_entries_reject_what_decode_rejects() -> None:
    for bad in (encode([1]), encode({"a": 1}) + b"\x00", b"\xa2\x61b\x01\x61a\x02"):  # not a map, trailing, unsorted
        with pytest.raises(EncodingError):
            decode_map_entries(bad)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=5), st.integers(min_value=0, max_value=3))
def test_a_parsed_transaction_has_the_id_of_its_encoded_body(payload: dict[str, Value], signers: int) -> None:
    tx = _note_signed_by(payload, signers)
    parsed = Transaction._parse(tx.to_bytes())  # not the memo: a fresh parse every time
    assert parsed._body == encode(tx.body_value()) and parsed.tx_id == tx.tx_id


def _map_by_the_rule(mapping: dict[str, Value]) -> bytes:
    """RFC 8949 § 4.2.1 by hand: the head, then entries sorted by their keys' encoded bytes."""
    entries = sorted((encode(key), encode(item)) for key, item in mapping.items())
    return bytes([0xA0 | len(entries)]) + b"".join(k + v for k, v in entries)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=12, unique=True), st.data())
def test_maps_of_one_key_set_encode_by_the_rule_in_any_insertion_order(keys: list[str], data: st.DataObject) -> None:
    """The encoder remembers each key set's canonical order; a map with the same keys
    inserted in another order, or with other values, still encodes by the rule."""
    for _ in range(3):
        order = data.draw(st.permutations(keys))
        mapping = {key: data.draw(st.integers(min_value=-5, max_value=5) | st.text(max_size=3)) for key in order}
        assert encode(mapping) == _map_by_the_rule(mapping)
        assert decode(encode(mapping)) == mapping


def test_a_map_with_a_non_string_key_is_refused_even_after_its_string_twin_was_encoded() -> None:
    encode({"1": 1, "a": 2})
    with pytest.raises(EncodingError):
        encode({1: 1, "a": 2})  # type: ignore[dict-item]
