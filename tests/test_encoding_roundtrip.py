"""Property tests: canonical encoding is a bijection on the data model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.constants import ENCODING_INT_MAX, ENCODING_INT_MIN
from ledger.encoding import Value, decode, encode
from ledger.errors import EncodingError

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=ENCODING_INT_MIN, max_value=ENCODING_INT_MAX)
    | st.binary(max_size=40)
    | st.text(max_size=20)
)
values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5)
    | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


def _as_decoded(value: Value) -> Value:
    """What decode returns for ``value``: tuples come back as lists."""
    if isinstance(value, (list, tuple)):
        return [_as_decoded(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_decoded(item) for key, item in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(values)
def test_decode_inverts_encode_and_reencoding_is_stable(value: Value) -> None:
    raw = encode(value)
    decoded = decode(raw)
    assert decoded == _as_decoded(value)
    assert encode(decoded) == raw


@settings(max_examples=300, deadline=None)
@given(values, st.binary(min_size=1, max_size=3))
def test_appending_bytes_to_an_encoding_is_rejected(value: Value, extra: bytes) -> None:
    try:
        decode(encode(value) + extra)
    except EncodingError:
        return
    raise AssertionError("trailing bytes were accepted")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12))
def test_any_accepted_bytes_reencode_identically(raw: bytes) -> None:
    try:
        value = decode(raw)
    except EncodingError:
        return
    assert encode(value) == raw
