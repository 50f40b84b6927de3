"""Fuzzing the parser and verifier: whatever the input, only a typed verdict comes out."""

from __future__ import annotations

import os
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.errors import VerificationError
from identity.presentation import present
from identity.request import PresentationRequest
from identity.sdjwt import Disclosure, HolderBinding, issue
from identity.verifier import (
    CnfHolderKeys,
    FixedIssuerKey,
    InMemoryStatusLists,
    StatusListSnapshot,
    check_presentation,
    verify_presentation,
)
from ledger.keys import SigningKey

NOW = 1_767_225_600
REQUEST = PresentationRequest(nonce="n", aud="a", claims=("given_name",), predicates=("age_equal_or_over.18",))
# IMI_FUZZ_EXAMPLES=5000 for a deeper run; the default keeps the suite fast.
FUZZ_EXAMPLES = int(os.environ.get("IMI_FUZZ_EXAMPLES", "300"))
SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=1)
def world() -> tuple[str, FixedIssuerKey, InMemoryStatusLists]:
    issuer, holder = SigningKey.generate("EdDSA"), SigningKey.generate("EdDSA")
    cred = issue(
        {"given_name": "Ada", "birthdate": "1990-01-01", "address": {"locality": "L"}, "list": [1, {"a": 2}]},
        issuer_key=issuer, iss="did:imi:i", vct="urn:v", holder=HolderBinding.from_key(holder.public_key),
        iat=NOW, exp=NOW + 3600, status={"status_list": {"idx": 0, "uri": "u"}},
        predicates={"age_equal_or_over": [16, 18, 65]},
    ).serialize()
    presentation = present(cred, ["given_name", "age_equal_or_over.18", "address.locality", "list.1.a"],
                           holder_key=holder, nonce="n", aud="a", iat=NOW)
    lists = InMemoryStatusLists({"u": StatusListSnapshot(bytes([0]), NOW)})
    return presentation, FixedIssuerKey(issuer.public_key), lists


def verdict(text: object) -> bool:
    _, issuer_keys, lists = world()
    result = verify_presentation(text, REQUEST, issuer_keys=issuer_keys,  # type: ignore[arg-type]
                                 holder_keys=CnfHolderKeys(), status=lists, now=NOW)
    assert result.reason and (result.valid == (result.reason == "ok"))
    try:
        check_presentation(text, REQUEST, issuer_keys=issuer_keys,  # type: ignore[arg-type]
                           holder_keys=CnfHolderKeys(), status=lists, now=NOW)
    except VerificationError:
        pass
    return result.valid


def test_the_unmutated_presentation_is_valid() -> None:
    assert verdict(world()[0])


@SETTINGS
@given(st.text(alphabet=st.characters(codec="ascii") | st.sampled_from("~.-_=é"), max_size=400))
def test_random_text_is_rejected_with_a_reason(text: str) -> None:
    assert not verdict(text)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_as_text_are_rejected(data: bytes) -> None:
    assert not verdict(data.decode("latin-1"))


@given(st.one_of(st.none(), st.integers(), st.binary(max_size=10), st.lists(st.text(max_size=3), max_size=3)))
@settings(max_examples=50, deadline=None)
def test_non_string_input_is_rejected(value: object) -> None:
    assert not verdict(value)


@st.composite
def mutations(draw: st.DrawFn) -> str:
    original = world()[0]
    kind = draw(st.sampled_from(["replace", "delete", "insert", "drop-part", "dup-part", "swap-parts", "truncate"]))
    if kind in ("replace", "delete", "insert", "truncate"):
        pos = draw(st.integers(0, len(original) - 1))
        char = draw(st.sampled_from("AZaz09-_~.=+/ \x00"))
        return {
            "replace": original[:pos] + char + original[pos + 1:],
            "delete": original[:pos] + original[pos + 1:],
            "insert": original[:pos] + char + original[pos:],
            "truncate": original[:pos],
        }[kind]
    parts = original.split("~")
    i = draw(st.integers(0, len(parts) - 1))
    j = draw(st.integers(0, len(parts) - 1))
    if kind == "drop-part":
        del parts[i]
    elif kind == "dup-part":
        parts.insert(j, parts[i])
    else:
        parts[i], parts[j] = parts[j], parts[i]
    return "~".join(parts)


@SETTINGS
@given(mutations())
def test_every_mutation_of_a_valid_presentation_is_rejected(mutated: str) -> None:
    original = world()[0]
    assert verdict(mutated) == (mutated == original)


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=4),
                    max_leaves=12))
def test_random_json_disclosures_decode_or_fail_typed(value: object) -> None:
    from identity import jose
    from ledger.keys import b64url_encode
    try:
        Disclosure.decode(b64url_encode(jose.json_dumps(value)))
    except VerificationError as exc:
        assert exc.reason in {"malformed-disclosure", "bad-claim-name", "reserved-claim-name"}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**40) | st.text(max_size=6),
    lambda c: st.lists(c, max_size=4)
    | st.dictionaries(st.sampled_from(["_sd", "...", "a", "b", "idx", "uri", "jwk", "kid", "status_list"]),
                      c, max_size=4),
    max_leaves=10,
)
_CLEAR = st.sampled_from(["_sd", "_sd_alg", "cnf", "status", "exp", "nbf", "iat", "x", "..."])


@lru_cache(maxsize=1)
def fuzz_issuer() -> SigningKey:
    return SigningKey.generate("EdDSA")


@SETTINGS
@given(st.dictionaries(_CLEAR, _JSON, max_size=5), st.lists(_JSON, max_size=4), st.data())
def test_signed_random_payloads_get_a_typed_verdict(extra: dict[str, object], raw: list[object],
                                                    data: st.DataObject) -> None:
    """A correctly signed but arbitrary payload reaches the disclosure, time, cnf and status
    checks; they must reject weird shapes with a reason, never crash."""
    from identity import jose
    from ledger.keys import b64url_encode

    issuer = fuzz_issuer()
    disclosures = [b64url_encode(jose.json_dumps(v)) for v in raw]
    payload: dict[str, object] = {"iss": "did:imi:i", "vct": "urn:v", **extra}
    if disclosures and data.draw(st.booleans()):
        from identity.sdjwt import digest
        payload["_sd"] = [digest(d) for d in disclosures]
    jwt = jose.sign({"typ": "dc+sd-jwt"}, payload, issuer)
    text = "~".join([jwt, *disclosures]) + "~" + data.draw(st.sampled_from(["", "a.b.c", jwt]))
    request = PresentationRequest(nonce="n", aud="a", require_key_binding=False)
    result = verify_presentation(text, request, issuer_keys=FixedIssuerKey(issuer.public_key),
                                 holder_keys=CnfHolderKeys(), status=world()[2], now=NOW)
    assert result.valid == (result.reason == "ok")


@SETTINGS
@given(st.dictionaries(_CLEAR, _JSON, max_size=5), st.lists(_JSON, max_size=4),
       st.lists(st.sampled_from(["a", "b", "_sd", "...", "a.b", "0", "a.0", "x.y.z"]), max_size=3))
def test_holder_side_handles_any_signed_credential(extra: dict[str, object], raw: list[object],
                                                   paths: list[str]) -> None:
    """A wallet given a hostile but well-signed credential fails with a typed error only."""
    from identity import jose
    from identity.errors import IdentityError
    from identity.presentation import HeldCredential
    from identity.sdjwt import digest
    from ledger.keys import b64url_encode

    disclosures = [b64url_encode(jose.json_dumps(v)) for v in raw]
    payload: dict[str, object] = {"iss": "i", "vct": "v", **extra}
    if disclosures and "_sd" not in extra:
        payload["_sd"] = [digest(d) for d in disclosures]
    compact = "~".join([jose.sign({"typ": "dc+sd-jwt"}, payload, fuzz_issuer()), *disclosures]) + "~"
    try:
        held = HeldCredential.parse(compact)
        held.claims()
        present(compact, paths, holder_key=fuzz_issuer(), nonce="n", aud="a", iat=NOW)
    except IdentityError:
        pass
