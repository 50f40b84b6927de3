"""Published credential types are what issuer and verifier go by (issue 17, item 4).

The world's identity type (``VCT``) publishes ``age_equal_or_over`` [14, 16, 18, 21, 65] as the
demo's does; a second type (``TEEN_VCT``) publishes [14, 16, 18] and keeps ``family_name`` in
the clear; ``OTHER_VCT`` is published by another issuer. Everything runs through the issuer
service's HTTP endpoints, the wallet's OpenID4VCI client (which verifies against the ledger
before storing) and the node's ``POST /v1/verify``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from identity.credtypes import CredentialType
from identity.errors import WalletError
from identity.holder import register_did
from identity.issuance import IssuanceRequestError, make_proof
from identity.ledger_trust import status_uri
from identity.oid4vci import check_offer, parse_offer_uri
from identity.oid4vci_client import receive
from identity.presentation import HeldCredential, present
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding, issue
from identity.wallet import KdfParams, Wallet
from ledger.keys import SigningKey
from tests.test_issuance_world import (
    ADMIN_TOKEN,
    AGE_THRESHOLDS,
    ISSUER_URL,
    LIST_ID,
    RECOVERY_VCT,
    VCT,
    World,
    build_world,
)

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
TEEN_VCT = "urn:imi:teen:1"
OTHER_VCT = "urn:imi:other:1"
AUD = "https://shop.example"
REGISTER = {
    "ada": {"claims": {"given_name": "Ada", "birthdate": "1990-12-10"}},
    "teen": {"claims": {"given_name": "Tom", "family_name": "Thumb", "birthdate": "2011-05-05"}},
    "outside": {"claims": {"given_name": "Eve", "birthdate": "1990-01-01", "criminal_record": "none"}},
    "no-birthdate": {"claims": {"given_name": "Nob"}},
    "changes": {"claims": {"given_name": "Cy", "birthdate": "1990-01-01"}},
    "lax": {"claims": {"given_name": "Lax", "birthdate": "1990-01-01", "religion": "none"}},
}


def _new_did(world: World) -> tuple[str, SigningKey]:
    key = SigningKey.generate()
    return register_did(world.node_client(), key)[0], key


@pytest.fixture(scope="module")
def world() -> World:
    """Before the agent reads anything: the agency is also accredited for TEEN_VCT (which it
    publishes) and OTHER_VCT (which another issuer published first)."""
    w = build_world(REGISTER)
    other, other_key = _new_did(w)
    w.gov("gov.issuer_accredit", {"did": other, "name": "Other bureau", "vcts": [OTHER_VCT]})
    w.gov("gov.issuer_accredit", {"did": w.agency_did, "name": "Civil Affairs",
                                  "vcts": [VCT, RECOVERY_VCT, TEEN_VCT, OTHER_VCT]})
    nc = w.node_client()
    nc.submit(nc.build("vct.publish", other, {"vct": OTHER_VCT, "name": "Other", "claims": ["given_name"]},
                       other_key))
    nc.submit(nc.build("vct.publish", w.agency_did, {
        "vct": TEEN_VCT, "name": "Teen", "claims": ["family_name", "given_name"],
        "selectively_disclosable": ["given_name"], "predicates": {"age_equal_or_over": [14, 16, 18]}},
        w.agency_key))
    return w


def now() -> int:
    return int(time.time())


def staff_offer(world: World, subject: str, vct: str = VCT) -> Any:
    return world.issuer_http.post("/v1/admin/offers", json={"subject": subject, "vcts": [vct]}, headers=ADMIN)


def wallet_receives(world: World, tmp_path: Path, subject: str, vct: str = VCT) -> Wallet:
    answer = staff_offer(world, subject, vct)
    assert answer.status_code == 200, answer.text
    wallet = Wallet.create(tmp_path / f"{subject}.json", "pw", kdf=KdfParams.fastest())
    receive(wallet, answer.json()["offer_uri"], http=world.route(), ledger=world.light_client(), now=now(),
            tx_code=answer.json()["tx_code"], allow_http=True)
    return wallet


def node_verify(world: World, presentation: str, request: PresentationRequest) -> dict[str, Any]:
    answer = world.node_http.post("/v1/verify", json={"presentation": presentation, "request": request.to_json()})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def question(vct: str, *predicates: str, claims: tuple[str, ...] = ()) -> PresentationRequest:
    return PresentationRequest(nonce=f"n-{time.monotonic_ns()}", aud=AUD, vct=frozenset({vct}), claims=claims,
                               predicates=predicates)


def held(wallet: Wallet) -> HeldCredential:
    (summary,) = wallet.credentials()
    return wallet._held(summary.id)[0]


def nothing_kept(world: World, subject: str) -> bool:
    return world.agent.records.enrolment(subject) is None and not world.agent.records.for_subject(subject)


# --- issuer metadata ------------------------------------------------------------------------------
def test_metadata_lists_each_published_type_with_its_claims_and_thresholds(world: World) -> None:
    configs = world.issuer_http.get("/.well-known/openid-credential-issuer").json()[
        "credential_configurations_supported"]
    assert set(configs) == {VCT, TEEN_VCT}  # not OTHER_VCT: another issuer's definition
    paths = [c["path"] for c in configs[VCT]["credential_metadata"]["claims"]]
    assert ["given_name"] in paths and ["age_equal_or_over"] in paths
    assert [p[1] for p in paths if p[0] == "age_equal_or_over" and len(p) == 2] == ["14", "16", "18", "21", "65"]


# --- over 21? --------------------------------------------------------------------------------------
def test_over_21_is_answered_end_to_end(world: World, tmp_path: Path) -> None:
    wallet = wallet_receives(world, tmp_path, "ada")
    credential = held(wallet)
    assert credential.claims()["age_equal_or_over"] == {str(t): t != 65 for t in AGE_THRESHOLDS}
    assert {d.name for d in credential.disclosures} >= {"given_name", "birthdate", "21"}
    request = question(VCT, "age_equal_or_over.21")
    verdict = node_verify(world, wallet.answer(request, now=now()), request)
    assert verdict["valid"], verdict
    assert verdict["disclosed"]["age_equal_or_over"] == {"21": True}
    assert "birthdate" not in verdict["disclosed"] and "given_name" not in verdict["disclosed"]


def test_a_type_without_21_cannot_answer_over_21(world: World, tmp_path: Path) -> None:
    wallet = wallet_receives(world, tmp_path, "teen", TEEN_VCT)
    credential = held(wallet)
    assert credential.claims()["age_equal_or_over"] == {"14": True, "16": False, "18": False}
    assert "birthdate" not in credential.claims()  # the source of the predicate, not in the type
    assert credential.payload["family_name"] == "Thumb"  # not selectively disclosable: in the clear
    over_21 = question(TEEN_VCT, "age_equal_or_over.21")
    with pytest.raises(WalletError) as info:
        wallet.answer(over_21, now=now())
    assert info.value.reason == "no-matching-credential"
    (summary,) = wallet.credentials()
    entry = wallet._held(summary.id)[1]
    shown = present(entry["compact"], ["age_equal_or_over.14"], holder_key=wallet.signing_key(entry["holder_key"]),
                    nonce=over_21.nonce, aud=AUD, iat=now())
    assert node_verify(world, shown, over_21)["reason"] == "claim-not-disclosed"
    over_14 = question(TEEN_VCT, "age_equal_or_over.14")
    assert node_verify(world, wallet.answer(over_14, now=now()), over_14)["valid"]


# --- the issuer refuses what the type does not list ------------------------------------------------
def test_a_record_with_a_claim_outside_the_type_gets_no_offer(world: World) -> None:
    answer = staff_offer(world, "outside")
    assert answer.status_code == 422 and answer.json()["reason"] == "claims-not-in-type", answer.text
    assert "criminal_record" in answer.json()["detail"]
    assert nothing_kept(world, "outside")


def test_a_predicate_without_its_source_is_refused(world: World) -> None:
    answer = staff_offer(world, "no-birthdate")
    assert answer.status_code == 422 and answer.json()["reason"] == "predicate-source-missing", answer.text


def test_a_record_changed_after_the_offer_is_denied_before_anything_is_kept(world: World) -> None:
    made = staff_offer(world, "changes")
    assert made.status_code == 200, made.text
    code = check_offer(parse_offer_uri(made.json()["offer_uri"])[0]).code
    token = world.issuer_http.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code", "pre-authorized_code": code,
        "tx_code": made.json()["tx_code"]}).json()["access_token"]
    world.agent.register.put("changes", {"given_name": "Cy", "birthdate": "1990-01-01", "religion": "x"})
    nonce = world.issuer_http.post("/nonce").json()["c_nonce"]
    key = SigningKey.generate("ES256")
    answer = world.issuer_http.post("/credential", headers={"authorization": f"Bearer {token}"}, json={
        "credential_configuration_id": VCT,
        "proofs": {"jwt": [make_proof(key, aud=ISSUER_URL, nonce=nonce, iat=now())]}})
    assert answer.status_code == 400 and answer.json()["error"] == "credential_request_denied", answer.text
    assert "claims-not-in-type" in answer.json()["error_description"]
    assert nothing_kept(world, "changes")  # not enrolled, nothing issued


def test_a_type_published_by_another_issuer_is_not_issued(world: World) -> None:
    answer = staff_offer(world, "ada", OTHER_VCT)
    assert answer.status_code == 400 and answer.json()["reason"] == "vct-not-offered", answer.text
    with pytest.raises(IssuanceRequestError) as info:
        world.agent.credential_type(OTHER_VCT, now())
    assert info.value.reason == "vct-other-issuer"
    with pytest.raises(IssuanceRequestError) as unpublished:
        world.agent.credential_type("urn:imi:never-published", now())
    assert unpublished.value.reason == "vct-not-published"


# --- the verifier refuses what the type does not list ------------------------------------------------
def forged(world: World, holder: SigningKey, claims: dict[str, Any], vct: str = VCT, **kw: Any) -> str:
    """Signed with the agency's own key, past its issuer service and the published type."""
    return issue(claims, issuer_key=world.agency_key, iss=world.agency_did, vct=vct,
                 holder=HolderBinding.from_key(holder.public_key), iat=now(), exp=now() + 3600,
                 kid=f"{world.agency_did}#{world.agency_key.key_id}",
                 status={"status_list": {"idx": 1000, "uri": status_uri(LIST_ID)}}, **kw).serialize()


def presented(credential: str, paths: list[str], holder: SigningKey, request: PresentationRequest) -> str:
    return present(credential, paths, holder_key=holder, nonce=request.nonce, aud=AUD, iat=now())


def test_a_forged_claim_outside_the_type_is_invalid(world: World) -> None:
    holder = SigningKey.generate("ES256")
    credential = forged(world, holder, {"given_name": "Eve", "criminal_record": "none"})
    request = question(VCT, claims=("criminal_record",))
    verdict = node_verify(world, presented(credential, ["criminal_record"], holder, request), request)
    assert (verdict["valid"], verdict["reason"]) == (False, "not-in-type-definition"), verdict
    over_30 = forged(world, holder, {"birthdate": "1960-01-01"}, predicates={"age_equal_or_over": [30]})
    request = question(VCT, "age_equal_or_over.30")
    verdict = node_verify(world, presented(over_30, ["age_equal_or_over.30"], holder, request), request)
    assert verdict["reason"] == "not-in-type-definition", verdict


def test_an_undisclosable_claim_sent_as_a_disclosure_is_invalid(world: World) -> None:
    holder = SigningKey.generate("ES256")
    credential = forged(world, holder, {"given_name": "Tom", "family_name": "Thumb"}, vct=TEEN_VCT)
    request = question(TEEN_VCT, claims=("family_name",))
    verdict = node_verify(world, presented(credential, ["family_name"], holder, request), request)
    assert (verdict["valid"], verdict["reason"]) == (False, "not-disclosable-in-type"), verdict
    as_typed = forged(world, holder, {"given_name": "Tom", "family_name": "Thumb"}, vct=TEEN_VCT,
                      disclosable={"given_name"})
    assert node_verify(world, presented(as_typed, [], holder, request), request)["valid"]


def test_the_wallet_stores_nothing_outside_the_published_type(world: World, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An issuer service that goes by its own idea of the type (here: one more claim) hands out
    a credential the wallet's check against the ledger refuses before storing it."""
    lax = CredentialType.of(VCT, world.agency_did, ["given_name", "religion"],
                            predicates={"age_equal_or_over": list(AGE_THRESHOLDS)})
    monkeypatch.setattr(world.agent, "credential_type", lambda vct, now: lax)
    answer = staff_offer(world, "lax")
    assert answer.status_code == 200, answer.text
    wallet = Wallet.create(tmp_path / "lax.json", "pw", kdf=KdfParams.fastest())
    with pytest.raises(IssuanceRequestError) as info:
        receive(wallet, answer.json()["offer_uri"], http=world.route(), ledger=world.light_client(), now=now(),
                tx_code=answer.json()["tx_code"], allow_http=True)
    assert info.value.reason == "credential-invalid" and "'religion' is not in the type" in str(info.value)
    assert wallet.credentials() == [] and wallet.issuances() == []
