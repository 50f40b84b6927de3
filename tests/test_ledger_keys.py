"""Keys and signatures: RFC 8037 vectors, JWK round trips, k-of-n thresholds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import KeyError_, SignatureError
from ledger.keys import (
    ALG_EDDSA,
    ALG_ES256,
    PublicKey,
    SigningKey,
    b64url_decode,
    b64url_encode,
    verify_threshold,
)

# RFC 8037 Appendix A.1-A.4
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC8037_SIGNING_INPUT = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
RFC8037_SIGNATURE = (
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def test_rfc8037_private_key_derives_the_published_public_key_and_thumbprint() -> None:
    key = SigningKey.from_private_jwk({"kty": "OKP", "crv": "Ed25519", "d": RFC8037_D, "x": RFC8037_X})
    assert key.public_key.to_jwk()["x"] == RFC8037_X
    assert key.key_id == RFC8037_THUMBPRINT


def test_rfc8037_signature_is_reproduced_and_verifies() -> None:
    key = SigningKey.from_private_jwk({"kty": "OKP", "crv": "Ed25519", "d": RFC8037_D, "x": RFC8037_X})
    signature = key.sign(RFC8037_SIGNING_INPUT)
    assert b64url_encode(signature) == RFC8037_SIGNATURE
    assert key.public_key.verify(RFC8037_SIGNING_INPUT, signature)
    assert not key.public_key.verify(RFC8037_SIGNING_INPUT + b"x", signature)


@pytest.mark.parametrize("alg", [ALG_EDDSA, ALG_ES256])
def test_signature_by_one_key_fails_under_another_and_on_any_bit_flip(alg: str) -> None:
    key, other = SigningKey.generate(alg), SigningKey.generate(alg)
    sig = key.sign(b"message")
    assert key.public_key.verify(b"message", sig)
    assert not other.public_key.verify(b"message", sig)
    for i in range(0, len(sig) * 8, 37):
        flipped = bytearray(sig)
        flipped[i // 8] ^= 1 << (i % 8)
        assert not key.public_key.verify(b"message", bytes(flipped))
    assert not key.public_key.verify(b"message", sig[:-1])


@pytest.mark.parametrize("alg", [ALG_EDDSA, ALG_ES256])
def test_private_jwk_round_trips_and_mismatched_d_is_rejected(alg: str) -> None:
    key = SigningKey.generate(alg)
    again = SigningKey.from_private_jwk(key.to_private_jwk())
    assert again.public_key == key.public_key
    jwk = key.to_private_jwk()
    jwk["d"] = SigningKey.generate(alg).to_private_jwk()["d"]
    with pytest.raises(KeyError_):
        SigningKey.from_private_jwk(jwk)


@pytest.mark.parametrize(
    "jwk",
    [
        {},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "OKP", "crv": "X25519", "x": RFC8037_X},
        {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X[:-2]},
        {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X + "="},
        {"kty": "EC", "crv": "P-256", "x": RFC8037_X, "y": RFC8037_X},  # not on the curve
        {"kty": "EC", "crv": "P-256", "x": RFC8037_X},
    ],
)
def test_malformed_public_jwks_are_rejected(jwk: dict[str, str]) -> None:
    with pytest.raises(KeyError_):
        PublicKey.from_jwk(jwk)


def test_base64url_decoding_is_strict() -> None:
    assert b64url_decode("AQID") == b"\x01\x02\x03"
    for bad in ("AQI=", "AQ+/", "A", "AR"):  # padding, wrong alphabet, bad length, non-canonical bits
        with pytest.raises(KeyError_):
            b64url_decode(bad)


def test_threshold_needs_k_distinct_valid_signatures_from_the_authorised_set() -> None:
    keys = [SigningKey.generate() for _ in range(3)]
    authorised = {k.key_id: k.public_key for k in keys}
    message = b"governance"
    sigs = {k.key_id: k.sign(message) for k in keys[:2]}
    assert verify_threshold(message, sigs, authorised, 2) == {keys[0].key_id, keys[1].key_id}
    with pytest.raises(SignatureError) as too_few:
        verify_threshold(message, {keys[0].key_id: sigs[keys[0].key_id]}, authorised, 2)
    assert too_few.value.reason == "threshold-not-met"
    outsider = SigningKey.generate()
    with pytest.raises(SignatureError):
        verify_threshold(message, {**sigs, outsider.key_id: outsider.sign(message)}, authorised, 2)
    with pytest.raises(SignatureError):
        verify_threshold(message, {keys[0].key_id: sigs[keys[1].key_id], keys[1].key_id: sigs[keys[1].key_id]},
                         authorised, 2)


@pytest.mark.parametrize("alg", [ALG_EDDSA, ALG_ES256])
def test_key_id_is_the_rfc7638_thumbprint_of_the_required_members(alg: str) -> None:
    import hashlib
    import json

    for _ in range(20):
        public = SigningKey.generate(alg).public_key
        # RFC 7638 §3: the required members, sorted, no whitespace, SHA-256, base64url
        canonical = json.dumps(public.to_jwk(), sort_keys=True, separators=(",", ":")).encode("ascii")
        expected = b64url_encode(hashlib.sha256(canonical).digest())
        parsed = PublicKey.from_jwk(public.to_jwk())
        assert parsed.thumbprint() == expected
        assert parsed.key_id == expected and parsed.key_id is parsed.key_id  # computed once, then kept
        assert parsed == public and hash(parsed) == hash(public)


def test_an_es256_key_off_the_curve_is_refused_when_parsed() -> None:
    jwk = SigningKey.generate(ALG_ES256).public_key.to_jwk()
    y = bytearray(b64url_decode(jwk["y"]))
    y[-1] ^= 1  # (x, y') is not on P-256
    with pytest.raises(KeyError_, match="invalid P-256 point"):
        PublicKey.from_jwk(dict(jwk, y=b64url_encode(bytes(y))))


def _b64url_decode_by_reencoding(text: str) -> bytes | None:
    """The definition: decode leniently, then the text must be the canonical unpadded encoding."""
    import base64

    if "=" in text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None
    return raw if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == text else None


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(alphabet="AQgwBC09-_+/=Zz .\né", max_size=12),
                 st.binary(max_size=40).map(lambda b: b64url_encode(b))))
def test_base64url_decoding_accepts_exactly_the_canonical_encodings(text: str) -> None:
    expected = _b64url_decode_by_reencoding(text)
    if expected is None:
        with pytest.raises(KeyError_):
            b64url_decode(text)
    else:
        assert b64url_decode(text) == expected
