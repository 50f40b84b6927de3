"""The verifier's memos and fast paths never change a verdict: VerifierCache hits, the issuer
signature memo, the JOSE header cache, PreparedKeys, the direct DER encoding and
the inline disclosure decoding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from identity import jose
from identity.credtypes import CredentialType
from identity.errors import IssuerError
from identity.presentation import present
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from identity.verifier import (
    CnfHolderKeys,
    FixedIssuerKey,
    InMemoryStatusLists,
    IssuerKey,
    StatusListSnapshot,
    VerifierCache,
    verify_presentation,
)
from ledger.errors import KeyError_
from ledger.keys import SigningKey, b64url_encode, der_signature

NOW, NONCE, AUD, VCT, URI = 1_800_000_000, "n-1", "https://rp.example", "urn:imi:pid:1", "https://s.example/1"
REQUEST = PresentationRequest(nonce=NONCE, aud=AUD, vct=frozenset({VCT}), claims=("given_name",),
                              predicates=("age_equal_or_over.18",), max_age_s=86_400)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.integers(0, 32), st.integers(0, 32))
def test_der_signature_is_encode_dss_signature(r: bytes, s: bytes, r_zeros: int, s_zeros: int) -> None:
    r, s = bytes(r_zeros) + r[r_zeros:], bytes(s_zeros) + s[s_zeros:]  # leading zero bytes, all-zero too
    expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert der_signature(r + s) == expected


class _Switchable:
    """An issuer resolver whose answer the test changes between verifications, as
    ledger accreditation can change at any height."""

    def __init__(self, key: jose.PreparedKey) -> None:
        self.answer: IssuerKey | IssuerError = IssuerKey(key, frozenset({VCT}))

    def resolve(self, iss: str, header: Mapping[str, Any]) -> IssuerKey:
        if isinstance(self.answer, IssuerError):
            raise self.answer
        return self.answer


def _setup(alg: str) -> tuple[SigningKey, SigningKey, str]:
    issuer, holder = SigningKey.generate(alg), SigningKey.generate("ES256")
    credential = issue(
        {"given_name": "Ada", "birthdate": "1990-12-10", "address": {"locality": "London", "country": "GB"}},
        issuer_key=issuer, iss="did:imi:issuer", vct=VCT, holder=HolderBinding.from_key(holder.public_key),
        iat=NOW - 60, exp=NOW + 3600, status={"status_list": {"idx": 3, "uri": URI}},
        predicates={"age_equal_or_over": [18]},
    ).serialize()
    return issuer, holder, credential


def _present(credential: str, holder: SigningKey, *, nonce: str = NONCE, iat: int = NOW) -> str:
    return present(credential, ["given_name", "age_equal_or_over.18", "address.locality"],
                   holder_key=holder, nonce=nonce, aud=AUD, iat=iat)


def _verify(presentation: str, issuer_keys: Any, cache: VerifierCache | None, *, now: int = NOW,
            statuses: bytes = bytes(16), request: PresentationRequest = REQUEST) -> Any:
    return verify_presentation(
        presentation, request, issuer_keys=issuer_keys, holder_keys=CnfHolderKeys(),
        status=InMemoryStatusLists({URI: StatusListSnapshot(statuses, now)}), now=now, cache=cache)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_a_cache_hit_runs_every_check_that_depends_on_more_than_the_text(alg: str) -> None:
    issuer, holder, credential = _setup(alg)
    presentation = _present(credential, holder)
    resolver = _Switchable(jose.PreparedKey(issuer.public_key, memo_max=4))
    cache = VerifierCache(entries_max=4)
    assert _verify(presentation, resolver, cache).valid
    assert not cache._checked  # the first sighting is only noted
    first = _verify(presentation, resolver, cache)
    assert first.valid, first.reason
    assert len(cache._checked) == 1
    # the claims are the caller's: changing them must not reach the next hit
    first.claims["address"]["locality"] = "Paris"
    del first.claims["given_name"]
    again = _verify(presentation, resolver, cache)
    assert again.valid and again.claims is not None
    assert again.claims["address"] == {"locality": "London"} and again.claims["given_name"] == "Ada"
    # each of these depends on state or time the cache does not key on
    assert _verify(presentation, resolver, cache, now=NOW + 3600 + 61).reason == "expired"
    assert _verify(presentation, resolver, cache, now=NOW + 400).reason == "kb-stale"
    assert _verify(presentation, resolver, cache, statuses=bytes([1] * 16)).reason == "revoked"
    other = PresentationRequest(nonce="n-2", aud=AUD)
    assert _verify(presentation, resolver, cache, request=other).reason == "kb-wrong-nonce"
    resolver.answer = IssuerKey(resolver.answer.key, frozenset({"urn:other"}))  # type: ignore[union-attr]
    assert _verify(presentation, resolver, cache).reason == "issuer-not-accredited"
    resolver.answer = IssuerKey(jose.PreparedKey(SigningKey.generate(alg).public_key), frozenset({VCT}))
    assert _verify(presentation, resolver, cache).reason == "bad-signature"
    resolver.answer = IssuerError("gone", reason="unknown-issuer")
    assert _verify(presentation, resolver, cache).reason == "unknown-issuer"
    resolver.answer = IssuerKey(jose.PreparedKey(issuer.public_key), frozenset({VCT}))
    # a new KB-JWT on the same SD-JWT: a hit, and its signature is checked
    fresh = _present(credential, holder, nonce=NONCE, iat=NOW - 1)
    assert fresh != presentation and _verify(fresh, resolver, cache).valid
    forged = fresh[: fresh.rindex(".") + 1] + presentation[presentation.rindex(".") + 1:]
    assert _verify(forged, resolver, cache).reason == "kb-bad-signature"
    stolen = _present(credential, SigningKey.generate("ES256"))
    assert _verify(stolen, resolver, cache).reason == "kb-bad-signature"
    assert _verify(presentation + "é", resolver, cache).reason == "malformed-compact"
    assert len(cache._checked) == 1  # one SD-JWT text throughout


class _SwitchableTypes:
    """Credential type definitions the test replaces between verifications, as a new read
    or a new version of ``vct/<vct>`` replaces a ledger-backed verifier's definition."""

    def __init__(self, definition: CredentialType) -> None:
        self.current = definition
        self.checks = 0

    def definition(self, vct: str) -> CredentialType:
        return self.current


def test_a_cache_hit_checks_the_type_once_per_definition_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """The type check is a pure function of the SD-JWT text and the definition: a hit
    against the definition it passed before skips it; any other definition object — even
    an equal one, a new read — is checked afresh, and one that refuses the credential wins."""
    issuer, holder, credential = _setup("ES256")
    presentation = _present(credential, holder)
    every = ["given_name", "birthdate", "address"]
    types = _SwitchableTypes(CredentialType.of(VCT, "did:imi:issuer", every, predicates={"age_equal_or_over": [18]}))
    resolver = _Switchable(jose.PreparedKey(issuer.public_key))
    resolver.answer = IssuerKey(resolver.answer.key, frozenset({VCT}), types)  # type: ignore[union-attr]
    real = CredentialType.check_credential

    def counting(self: CredentialType, *args: Any) -> None:
        types.checks += 1
        real(self, *args)

    monkeypatch.setattr(CredentialType, "check_credential", counting)
    cache = VerifierCache(entries_max=4)
    for _ in range(4):  # noted, kept, then two hits
        assert _verify(presentation, resolver, cache).valid
    assert types.checks == 3  # the second hit skipped it
    types.current = CredentialType.of(VCT, "did:imi:issuer", every, predicates={"age_equal_or_over": [18]})
    assert _verify(presentation, resolver, cache).valid and types.checks == 4  # an equal but new definition
    types.current = CredentialType.of(VCT, "did:imi:issuer", ["given_name", "birthdate"],
                                      predicates={"age_equal_or_over": [18]})  # a version without address
    assert _verify(presentation, resolver, cache).reason == "not-in-type-definition"
    assert _verify(presentation, resolver, cache).reason == "not-in-type-definition"  # never remembered as passed
    types.current = CredentialType.of(VCT, "did:imi:other", every, predicates={"age_equal_or_over": [18]})
    assert _verify(presentation, resolver, cache).reason == "vct-other-issuer"


def test_the_cache_never_keeps_a_failure() -> None:
    issuer, holder, credential = _setup("ES256")
    presentation = _present(credential, holder)
    cache = VerifierCache()
    wrong = FixedIssuerKey(SigningKey.generate("ES256").public_key, kid=issuer.key_id, memo_max=4)
    assert _verify(presentation, wrong, cache).reason == "bad-signature"
    assert not cache._checked
    parts = presentation.split("~")
    parts.insert(2, parts[1])  # a disclosure twice
    twice = "~".join(parts)
    right = FixedIssuerKey(issuer.public_key, vct=frozenset({VCT}), memo_max=4)
    assert _verify(twice, right, cache).reason == "duplicate-disclosure"
    assert _verify(twice, right, cache).reason == "duplicate-disclosure"
    assert not cache._checked
    assert _verify(presentation, right, cache).valid and not cache._checked
    assert _verify(presentation, right, cache).valid
    assert len(cache._checked) == 1


def test_the_checked_map_is_bounded() -> None:
    issuer, holder, credential = _setup("EdDSA")
    keys = FixedIssuerKey(issuer.public_key, vct=frozenset({VCT}))
    cache = VerifierCache(entries_max=2)
    for paths in (["given_name"], ["age_equal_or_over.18"], ["address.locality"]):
        presentation = present(credential, [*paths, "given_name", "age_equal_or_over.18"],
                               holder_key=holder, nonce=NONCE, aud=AUD, iat=NOW)
        assert _verify(presentation, keys, cache).valid and _verify(presentation, keys, cache).valid
    assert len(cache._checked) == 2 and len(cache._seen) == 0


def test_parsed_headers_are_not_shared() -> None:
    key = SigningKey.generate("ES256")
    token = jose.sign({"typ": "kb+jwt"}, {"a": 1}, key)
    first = jose.parse(token)
    first.header["typ"] = "changed"
    assert jose.parse(token).header == {"typ": "kb+jwt", "alg": "ES256"}
    nested = jose.sign({"typ": "x", "jwk": key.public_key.to_jwk()}, {"a": 1}, key)
    jose.parse(nested).header["jwk"]["x"] = "changed"
    assert jose.parse(nested).header["jwk"] == key.public_key.to_jwk()
    with pytest.raises(Exception, match="not allowed"):
        jose.parse(token.replace(token.split(".")[0], b64url_encode(b'{"alg":"none"}')))


def test_prepared_keys_share_one_key_per_jwk_and_stay_bounded() -> None:
    cache = jose.PreparedKeys(entries_max=2)
    keys = [SigningKey.generate(alg).public_key for alg in ("ES256", "EdDSA", "ES256")]
    first = cache.from_jwk(keys[0].to_jwk())
    assert cache.from_jwk(dict(keys[0].to_jwk(), kid="x")) is first
    assert cache.get(keys[0]) is first
    for key in keys:
        assert cache.get(key).public_key == key
    assert len(cache) == 2
    for bad in ({"kty": "RSA"}, {"kty": "OKP", "crv": "Ed25519", "x": "AA"}, {"kty": "EC", "x": ["a"]}, "jwk"):
        with pytest.raises(KeyError_):
            cache.from_jwk(bad)  # type: ignore[arg-type]
    assert len(cache) == 2


def _one_by_one(encoded: list[str]) -> dict[str, tuple[str | None, Any]] | str:
    from identity.errors import DisclosureError
    from identity.sdjwt import decode_disclosure, digest

    out: dict[str, tuple[str | None, Any]] = {}
    try:
        for e in encoded:
            _salt, name, value = decode_disclosure(e)
            out[digest(e)] = (name, value)
    except DisclosureError as exc:
        return exc.reason
    return out


_DISCLOSURE_TEXTS = st.one_of(
    st.text(alphabet="AQgwBC09-_+/=Wy.", max_size=16),
    st.builds(lambda v: b64url_encode(jose.json_dumps(v)),
              st.lists(st.one_of(st.text(max_size=4), st.integers(), st.none(), st.just("_sd"),
                                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)), max_size=4)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_DISCLOSURE_TEXTS, max_size=4))
def test_disclosed_by_digest_is_decode_disclosure_one_by_one(encoded: list[str]) -> None:
    from identity.errors import DisclosureError
    from identity.sdjwt import disclosed_by_digest

    try:
        got: dict[str, tuple[str | None, Any]] | str = disclosed_by_digest(encoded)
    except DisclosureError as exc:
        got = exc.reason
    assert got == _one_by_one(encoded)


def test_an_sd_jwt_is_kept_from_its_second_sighting_and_its_claims_are_not_the_callers() -> None:
    issuer, holder, credential = _setup("ES256")
    keys = FixedIssuerKey(issuer.public_key, vct=frozenset({VCT}))
    cache = VerifierCache(entries_max=2)
    sd_jwt = _present(credential, holder).rsplit("~", 1)[0] + "~"
    first = _verify(_present(credential, holder), keys, cache)
    assert first.valid and first.claims is not None
    assert not cache._checked and len(cache._seen) == 1  # one-time credentials stop here
    first.claims["given_name"] = "Eve"  # the miss's own claims
    second = _verify(_present(credential, holder, iat=NOW - 1), keys, cache)  # same SD-JWT, new KB-JWT
    assert second.valid and second.claims is not None and second.claims["given_name"] == "Ada"
    assert list(cache._checked) == [sd_jwt] and not cache._seen
    second.claims["given_name"] = "Mallory"  # the kept claims are a copy too
    third = _verify(_present(credential, holder, iat=NOW - 2), keys, cache)
    assert third.valid and third.claims is not None and third.claims["given_name"] == "Ada"
    for i in range(3):  # the notes are bounded as the entries are
        other = _setup("ES256")
        assert _verify(_present(other[2], other[1]), FixedIssuerKey(other[0].public_key), cache).valid
    assert len(cache._seen) == 2
