"""OpenID4VP 1.0 in one process: signed request, wallet answer, verdict — and every refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from identity import dcql, jose, oid4vp
from identity.errors import Oid4vpError
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from identity.verifier import CnfHolderKeys, FixedIssuerKey, NoStatus, verify_presentation
from identity.wallet import KdfParams, Wallet
from ledger.keys import PublicKey, SigningKey

NOW = 1_767_225_600
PID, RESIDENCE = "urn:imi:pid:1", "urn:imi:residence:1"
ISSUER = SigningKey.generate("EdDSA")
SERVICE_KEY = SigningKey.generate("EdDSA")
SERVICE_DID = "did:imi:service"
KID = SERVICE_DID + "#key-1"
RESPONSE_URI = "https://desk.example/v1/responses"

QUERY = {
    "credentials": [
        {"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [PID]},
         "claims": [{"path": ["age_equal_or_over", "18"], "values": [True]}]},
        {"id": "home", "format": "dc+sd-jwt", "meta": {"vct_values": [RESIDENCE]},
         "claims": [{"id": "town", "path": ["address", "locality"]}, {"id": "street", "path": ["address", "street"]}],
         "claim_sets": [["town"], ["town", "street"]]},
    ],
}


def service_key(did: str, kid: str) -> PublicKey:
    if did != SERVICE_DID or kid != KID:
        raise Oid4vpError("unknown key", reason="invalid_request_object")
    return SERVICE_KEY.public_key


@pytest.fixture()
def wallet(tmp_path: Path) -> Wallet:
    w = Wallet.create(tmp_path / "w.json", "pw", kdf=KdfParams.fastest())
    for vct, claims, predicates in (
            (PID, {"given_name": "Ada", "birthdate": "1990-12-10"}, {"age_equal_or_over": [16, 18, 65]}),
            (RESIDENCE, {"address": {"locality": "Chancheng", "street": "1 Road"}}, None)):
        key_id = w.new_key("ES256")
        compact = issue(claims, issuer_key=ISSUER, iss="did:imi:agency", vct=vct,
                        holder=HolderBinding.from_key(w.public_key(key_id)), iat=NOW - 10, exp=NOW + 3600,
                        predicates=predicates)
        w.add_credential(compact.serialize(), now=NOW)
    return w


def make_request(query: dict[str, Any] = QUERY, *, nonce: str = "n-1", state: str = "s-1") -> oid4vp.AuthorizationRequest:
    return oid4vp.new_request(SERVICE_DID, RESPONSE_URI, dcql.parse_query(query), nonce=nonce, state=state,
                              now=NOW, lifetime_s=300)


def signed(request: oid4vp.AuthorizationRequest, key: SigningKey = SERVICE_KEY, **change: Any) -> str:
    claims = request.claims() | change
    return jose.sign({"typ": oid4vp.REQUEST_OBJECT_TYP, "kid": KID}, claims, key)


def verify_one(presentation: str, question: PresentationRequest) -> Any:
    return verify_presentation(presentation, question, issuer_keys=FixedIssuerKey(ISSUER.public_key),
                               holder_keys=CnfHolderKeys(), status=NoStatus(), now=NOW)


def test_wallet_answers_with_the_fewest_disclosures_and_the_verifier_learns_only_that(wallet: Wallet) -> None:
    request = make_request()
    uri = oid4vp.authorization_uri(request.client_id, "https://desk.example/v1/requests/abc")
    client_id, request_uri = oid4vp.parse_authorization_uri(uri)
    assert client_id == "decentralized_identifier:" + SERVICE_DID and request_uri.endswith("/abc")
    request_object = oid4vp.sign_request(request, SERVICE_KEY, KID)
    # §5.8 static discovery; no iss: wallets reading it as the bare DID refuse a prefixed one
    payload = jose.parse(request_object).payload
    assert payload["aud"] == "https://self-issued.me/v2" and "iss" not in payload
    opened = oid4vp.open_request(request_object, client_id=client_id, service_key=service_key, now=NOW)
    assert opened == request
    token = oid4vp.wallet_answer(wallet, opened, now=NOW, verifier="Community desk")
    assert set(token) == {"pid", "home"}
    verdict = oid4vp.check_response(request, oid4vp.parse_vp_token(json.dumps(token)), verify_one)
    assert verdict.valid, verdict
    assert verdict.claims["pid"]["age_equal_or_over.18"] is True
    assert verdict.claims["home"] == {"vct": RESIDENCE, "iss": "did:imi:agency", "address.locality": "Chancheng"}
    # the street was not disclosed at all: asking the presentation for it fails
    street = PresentationRequest(nonce="n-1", aud=request.client_id, claims=("address.street",))
    assert verify_one(token["home"][0], street).reason == "claim-not-disclosed"
    birthdate = PresentationRequest(nonce="n-1", aud=request.client_id, claims=("birthdate",))
    assert verify_one(token["pid"][0], birthdate).reason == "claim-not-disclosed"
    history = wallet.history()
    assert [h.verifier for h in history] == ["Community desk", "Community desk"]
    assert {h.aud for h in history} == {request.client_id}


def test_credential_sets_take_the_first_option_the_wallet_can_meet(wallet: Wallet) -> None:
    query = {"credentials": QUERY["credentials"] + [
        {"id": "tax", "format": "dc+sd-jwt", "meta": {"vct_values": ["urn:imi:tax:1"]},
         "claims": [{"path": ["tax_id"]}]}],
        "credential_sets": [{"options": [["tax"], ["pid"]]}, {"options": [["home"]], "required": False}]}
    request = make_request(query)
    token = oid4vp.wallet_answer(wallet, request, now=NOW)
    assert set(token) == {"pid"}  # the optional set is not answered: fewest disclosures
    assert oid4vp.check_response(request, token, verify_one).valid


def test_wallet_refuses_when_a_required_credential_is_missing(wallet: Wallet) -> None:
    query = {"credentials": [{"id": "tax", "format": "dc+sd-jwt", "meta": {"vct_values": ["urn:imi:tax:1"]},
                              "claims": [{"path": ["tax_id"]}]}]}
    with pytest.raises(Oid4vpError) as err:
        oid4vp.wallet_answer(wallet, make_request(query), now=NOW)
    assert err.value.reason == "access_denied" and wallet.history() == []


@pytest.mark.parametrize(("change", "key", "reason"), [
    ({}, SigningKey.generate("EdDSA"), "invalid_request_object"),  # signed by another key
    ({"client_id": "decentralized_identifier:did:imi:other"}, SERVICE_KEY, "invalid_client"),
    ({"response_mode": "fragment"}, SERVICE_KEY, "invalid_request"),
    ({"response_type": "code"}, SERVICE_KEY, "invalid_request"),
    ({"response_uri": "http://desk.example/post"}, SERVICE_KEY, "invalid_request"),
    ({"nonce": ""}, SERVICE_KEY, "invalid_request"),
    ({"exp": NOW - 120, "iat": NOW - 400}, SERVICE_KEY, "request-expired"),
    ({"exp": NOW + 100_000}, SERVICE_KEY, "invalid_request_object"),
    ({"dcql_query": {"credentials": []}}, SERVICE_KEY, "invalid_request"),
    ({"presentation_definition": {}}, SERVICE_KEY, "invalid_request"),
])
def test_wallet_refuses_a_request_object_that_does_not_hold(change: dict[str, Any], key: SigningKey,
                                                            reason: str) -> None:
    request = make_request()
    with pytest.raises(Oid4vpError) as err:
        oid4vp.open_request(signed(request, key, **change), client_id=request.client_id,
                            service_key=service_key, now=NOW)
    assert err.value.reason == reason


def test_wallet_refuses_a_wrong_typ_or_a_kid_of_another_did() -> None:
    request = make_request()
    for header in ({"typ": "JWT", "kid": KID}, {"typ": oid4vp.REQUEST_OBJECT_TYP, "kid": "did:imi:x#key-1"}):
        with pytest.raises(Oid4vpError) as err:
            oid4vp.open_request(jose.sign(header, request.claims(), SERVICE_KEY), client_id=request.client_id,
                                service_key=service_key, now=NOW)
        assert err.value.reason == "invalid_request_object"


@pytest.mark.parametrize("uri", [
    "https://desk.example/?client_id=x&request_uri=https://a",
    "openid4vp://?client_id=did:imi:x&request_uri=https://a",  # no prefix
    "openid4vp://?client_id=decentralized_identifier:did:imi:x&request_uri=http://evil.example/r",
    "openid4vp://?client_id=decentralized_identifier:did:imi:x&request_uri=https://a&request_uri_method=post",
    "openid4vp://?client_id=decentralized_identifier:did:imi:x",
    "openid4vp://?client_id=a&client_id=b&request_uri=https://a",
])
def test_bad_authorization_uris_are_refused(uri: str) -> None:
    with pytest.raises(Oid4vpError):
        oid4vp.parse_authorization_uri(uri)


def test_requests_that_select_every_array_element_are_refused_when_made() -> None:
    query = {"credentials": [{"id": "a", "format": "dc+sd-jwt", "meta": {"vct_values": [PID]},
                              "claims": [{"path": ["nationalities", None]}]}]}
    with pytest.raises(Oid4vpError) as err:
        make_request(query)
    assert err.value.reason == "unsupported-path"


def _answer(wallet: Wallet, request: oid4vp.AuthorizationRequest) -> dict[str, list[str]]:
    return oid4vp.wallet_answer(wallet, request, now=NOW)


def test_verdicts_for_a_wrong_nonce_a_tampered_disclosure_and_a_foreign_key(wallet: Wallet) -> None:
    request = make_request()
    other_nonce = _answer(wallet, make_request(nonce="n-2"))
    assert oid4vp.check_response(request, other_nonce, verify_one).reason == "kb-wrong-nonce"
    token = _answer(wallet, request)
    head, *disclosures, kb = token["home"][0].split("~")
    forged = jose.b64url_sha256(b"x")  # a disclosure the issuer never signed
    tampered = dict(token, home=["~".join([head, forged, *disclosures, kb])])
    assert not oid4vp.check_response(request, tampered, verify_one).valid
    wrong_kb = dict(token, home=[token["home"][0].rsplit("~", 1)[0] + "~" + jose.sign(
        {"typ": "kb+jwt"}, {"nonce": "n-1", "aud": request.client_id, "iat": NOW, "sd_hash": "x"},
        SigningKey.generate("ES256"))])
    assert oid4vp.check_response(request, wrong_kb, verify_one).reason == "kb-bad-signature"


def test_vp_token_shapes_that_are_refused(wallet: Wallet) -> None:
    request = make_request()
    token = _answer(wallet, request)
    assert oid4vp.check_response(request, {"pid": token["pid"]}, verify_one).reason == "access_denied"
    assert oid4vp.check_response(request, token | {"extra": token["pid"]}, verify_one).reason == "invalid-vp-token"
    two = token | {"pid": token["pid"] * 2}
    assert oid4vp.check_response(request, two, verify_one).reason == "invalid-vp-token"
    for text in ("", "[]", "{}", '{"pid": []}', '{"pid": [1]}', "not json", "x" * 300_000):
        with pytest.raises(Oid4vpError):
            oid4vp.parse_vp_token(text)
