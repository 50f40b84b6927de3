"""Issuance format (RFC 9901, SD-JWT VC) and holder-side selection."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from identity import jose
from identity.errors import IssuanceError, PresentationError
from identity.presentation import HeldCredential, present, sd_hash
from identity.request import PresentationRequest
from identity.sdjwt import Disclosure, HolderBinding, age_predicates, digest, issue
from identity.verifier import CnfHolderKeys, FixedIssuerKey, NoStatus, verify_presentation
from ledger.keys import SigningKey, b64url_decode

NOW = 1_767_225_600
CLAIMS: dict[str, Any] = {
    "given_name": "Ada",
    "birthdate": "2008-01-01",
    "address": {"locality": "London", "street_address": "1 Square"},
    "nationalities": ["GB", "IT"],
}
AGES = {"age_equal_or_over": [16, 18, 65]}  # the thresholds a type would publish


def make(issuer: SigningKey, holder: SigningKey, **kw: Any) -> str:
    kw.setdefault("predicates", AGES)
    return issue(CLAIMS, issuer_key=issuer, iss="did:imi:i", vct="urn:imi:pid:1",
                 holder=HolderBinding.from_key(holder.public_key), iat=NOW, exp=NOW + 3600, **kw).serialize()


@pytest.fixture(scope="module")
def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey.generate("EdDSA"), SigningKey.generate("EdDSA")


def test_header_has_vc_typ_alg_and_thumbprint_kid(keys: tuple[SigningKey, SigningKey]) -> None:
    issuer, holder = keys
    header = jose.parse(make(issuer, holder).split("~")[0]).header
    assert header == {"typ": "dc+sd-jwt", "kid": issuer.key_id, "alg": "EdDSA"}


def test_only_vc_registered_claims_are_in_the_clear(keys: tuple[SigningKey, SigningKey]) -> None:
    held = HeldCredential.parse(make(*keys))
    assert set(held.payload) == {"iss", "vct", "iat", "exp", "cnf", "_sd", "_sd_alg"}
    assert held.payload["_sd_alg"] == "sha-256"
    names = {d.name for d in held.disclosures}
    assert {"given_name", "birthdate", "address", "locality", "street_address",
            "age_equal_or_over", "16", "18", "65"} <= names
    assert sum(1 for d in held.disclosures if d.name is None) == 2  # two array elements


def test_salts_are_128_bit_and_unique(keys: tuple[SigningKey, SigningKey]) -> None:
    held = HeldCredential.parse(make(*keys))
    salts = [d.salt for d in held.disclosures]
    assert all(len(b64url_decode(s)) >= 16 for s in salts)
    assert len(set(salts)) == len(salts)


def test_digests_are_sorted_and_include_decoys(keys: tuple[SigningKey, SigningKey]) -> None:
    held = HeldCredential.parse(make(*keys))
    top = held.payload["_sd"]
    assert top == sorted(top)
    top_disclosures = [d for d in held.disclosures if d.digest in top]
    assert len(top) > len(top_disclosures)  # decoys


def test_digest_is_sha256_of_the_ascii_disclosure() -> None:
    d = Disclosure.create("x", 1)
    import hashlib
    assert d.digest == base64.urlsafe_b64encode(hashlib.sha256(d.encoded.encode()).digest()).rstrip(b"=").decode()
    assert digest(d.encoded) == d.digest
    assert Disclosure.decode(d.encoded) == d


def test_no_decoys_when_disabled(keys: tuple[SigningKey, SigningKey]) -> None:
    held = HeldCredential.parse(make(*keys, decoys=False))
    top_digests = set(held.payload["_sd"])
    assert top_digests <= {d.digest for d in held.disclosures}


@pytest.mark.parametrize(
    ("birthdate", "on", "expected"),
    [
        ("2008-01-01", "2026-01-01", {"16": True, "18": True, "65": False}),
        ("2008-01-02", "2026-01-01", {"16": True, "18": False, "65": False}),
        ("1960-12-31", "2026-01-01", {"16": True, "18": True, "65": True}),
        ("2012-02-29", "2028-02-28", {"16": False, "18": False, "65": False}),
        ("2012-02-29", "2028-02-29", {"16": True, "18": False, "65": False}),
    ],
)
def test_age_predicates_turn_on_the_birthday(birthdate: str, on: str, expected: dict[str, bool]) -> None:
    assert age_predicates(birthdate, dt.date.fromisoformat(on), (65, 16, 18)) == expected


def test_age_predicates_have_exactly_the_thresholds_given() -> None:
    assert age_predicates("2005-06-01", dt.date(2026, 6, 1), (14, 21)) == {"14": True, "21": True}
    assert age_predicates("2005-06-02", dt.date(2026, 6, 1), (21,)) == {"21": False}


@pytest.mark.parametrize("bad", ["01/01/2000", "2000-13-01", "20000101", "", 20000101])
def test_bad_birthdate_is_refused(bad: Any) -> None:
    with pytest.raises(IssuanceError) as info:
        age_predicates(bad, dt.date(2026, 1, 1), (18,))
    assert info.value.reason == "bad-predicate-source"


def test_no_predicate_is_derived_unless_asked(keys: tuple[SigningKey, SigningKey]) -> None:
    held = HeldCredential.parse(make(*keys, predicates=None))
    assert "age_equal_or_over" not in held.claims() and held.claims()["birthdate"] == "2008-01-01"


@pytest.mark.parametrize(("claims", "predicates", "reason"), [
    ({"given_name": "Ada"}, {"age_equal_or_over": [18]}, "predicate-source-missing"),
    ({"birthdate": "2000-01-01"}, {"height_over": [150]}, "predicate-not-derivable"),
    ({"birthdate": "2000-01-01", "age_equal_or_over": {"18": True}}, {"age_equal_or_over": [18]},
     "predicate-given"),
])
def test_predicates_that_cannot_be_derived_are_refused(claims: dict[str, Any], predicates: dict[str, list[int]],
                                                       reason: str, keys: tuple[SigningKey, SigningKey]) -> None:
    issuer, holder = keys
    with pytest.raises(IssuanceError) as info:
        issue(claims, issuer_key=issuer, iss="i", vct="v", holder=HolderBinding.from_key(holder.public_key),
              iat=NOW, predicates=predicates)
    assert info.value.reason == reason


def test_claims_not_disclosable_stay_whole_in_the_clear(keys: tuple[SigningKey, SigningKey]) -> None:
    held = HeldCredential.parse(make(*keys, disclosable={"given_name"}))
    assert held.payload["address"] == CLAIMS["address"] and held.payload["birthdate"] == "2008-01-01"
    names = {d.name for d in held.disclosures}
    assert names == {"given_name", "age_equal_or_over", "16", "18", "65"}  # predicates: always disclosable


@pytest.mark.parametrize("claims", [{"_sd": 1}, {"a": {"...": 1}}, {"vct": "x"}, {"cnf": {}}, {"a": {1, 2}}])
def test_reserved_or_non_json_claims_are_refused(claims: dict[str, Any], keys: tuple[SigningKey, SigningKey]) -> None:
    issuer, holder = keys
    with pytest.raises(IssuanceError):
        issue(claims, issuer_key=issuer, iss="i", vct="v", holder=HolderBinding.from_key(holder.public_key), iat=NOW)


def test_non_finite_numbers_and_over_deep_claims_are_refused(keys: tuple[SigningKey, SigningKey]) -> None:
    issuer, holder = keys
    binding = HolderBinding.from_key(holder.public_key)
    too_deep: dict[str, Any] = {}
    node = too_deep
    for _ in range(15):
        node["x"] = {}
        node = node["x"]
    for claims in ({"a": float("nan")}, {"a": [float("inf")]}, too_deep):
        with pytest.raises(IssuanceError):
            issue(claims, issuer_key=issuer, iss="i", vct="v", holder=binding, iat=NOW)


def test_deepest_issuable_claims_still_verify(keys: tuple[SigningKey, SigningKey]) -> None:
    issuer, holder = keys
    deepest: dict[str, Any] = {}
    node = deepest
    for _ in range(13):  # with the top object and the leaf list: 15 nested containers
        node["x"] = {}
        node = node["x"]
    node["leaf"] = [1]
    cred = issue(deepest, issuer_key=issuer, iss="i", vct="v",
                 holder=HolderBinding.from_key(holder.public_key), iat=NOW).serialize()
    presentation = present(cred, ["x"], holder_key=holder, nonce="n", aud="a", iat=NOW)
    result = verify_presentation(presentation, PresentationRequest(nonce="n", aud="a"),
                                 issuer_keys=FixedIssuerKey(issuer.public_key), holder_keys=CnfHolderKeys(),
                                 status=NoStatus(), now=NOW)
    assert result.valid, result.detail


def test_holder_binding_needs_exactly_one_form() -> None:
    with pytest.raises(IssuanceError):
        HolderBinding()
    with pytest.raises(IssuanceError):
        HolderBinding(jwk={"kty": "OKP", "crv": "Ed25519", "x": "AA"})


def test_selection_adds_parents_and_nothing_else(keys: tuple[SigningKey, SigningKey]) -> None:
    held = HeldCredential.parse(make(*keys))
    chosen = held.select(["address.locality", "age_equal_or_over.18"])
    assert sorted(d.name for d in chosen if d.name) == ["18", "address", "age_equal_or_over", "locality"]
    whole = held.select(["address"])
    assert sorted(d.name for d in whole if d.name) == ["address", "locality", "street_address"]


def test_selecting_an_unheld_claim_fails(keys: tuple[SigningKey, SigningKey]) -> None:
    with pytest.raises(PresentationError) as info:
        HeldCredential.parse(make(*keys)).select(["passport_number"])
    assert info.value.reason == "claim-not-held"


def test_holder_sees_all_claims(keys: tuple[SigningKey, SigningKey]) -> None:
    claims = HeldCredential.parse(make(*keys)).claims()
    assert claims["address"] == CLAIMS["address"]
    assert claims["nationalities"] == ["GB", "IT"]
    assert claims["age_equal_or_over"] == {"16": True, "18": True, "65": False}


def test_kb_jwt_binds_the_exact_presentation(keys: tuple[SigningKey, SigningKey]) -> None:
    issuer, holder = keys
    presentation = present(make(issuer, holder), ["given_name"], holder_key=holder, nonce="n", aud="a", iat=NOW)
    without_kb, kb = presentation.rsplit("~", 1)
    parsed = jose.parse(kb)
    assert parsed.header == {"typ": "kb+jwt", "alg": "EdDSA"}
    assert parsed.payload == {"iat": NOW, "aud": "a", "nonce": "n", "sd_hash": sd_hash(without_kb + "~")}


def test_eddsa_holder_and_cnf_kid_resolved_from_did_keys(keys: tuple[SigningKey, SigningKey]) -> None:
    issuer, holder = keys
    did_url = "did:imi:holder#key-1"
    cred = issue(CLAIMS, issuer_key=issuer, iss="did:imi:i", vct="urn:imi:pid:1",
                 holder=HolderBinding(kid=did_url), iat=NOW).serialize()
    presentation = present(cred, ["given_name"], holder_key=holder, nonce="n", aud="a", iat=NOW)
    request = PresentationRequest(nonce="n", aud="a", claims=("given_name",))
    ok = verify_presentation(presentation, request, issuer_keys=FixedIssuerKey(issuer.public_key),
                             holder_keys=CnfHolderKeys({did_url: holder.public_key}), status=NoStatus(), now=NOW)
    assert ok.valid, ok.detail
    other = verify_presentation(presentation, request, issuer_keys=FixedIssuerKey(issuer.public_key),
                                holder_keys=CnfHolderKeys(), status=NoStatus(), now=NOW)
    assert other.reason == "unknown-holder-key"


def test_request_json_round_trip_and_minimum_paths() -> None:
    request = PresentationRequest(nonce="n", aud="a", vct=frozenset({"v"}), claims=("x", "y"),
                                  predicates=("age_equal_or_over.18", "x"), max_age_s=10)
    assert PresentationRequest.from_json(json.loads(json.dumps(request.to_json()))) == request
    assert request.paths_to_disclose() == ("x", "y", "age_equal_or_over.18")


@pytest.mark.parametrize("bad", [{"nonce": "n"}, {"nonce": "n", "aud": "a", "claims": "x"},
                                 {"nonce": "n", "aud": "a", "max_age_s": "1"}, {"nonce": "", "aud": "a"},
                                 {"nonce": "n", "aud": "a", "claims": ["a..b"]},
                                 {"nonce": "n", "aud": "a", "require_key_binding": "no"}])
def test_malformed_request_json_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PresentationRequest.from_json(bad)
