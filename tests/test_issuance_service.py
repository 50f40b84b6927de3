"""The issuer service over a DevNode: nonce, proof of possession, issuance traces on the
ledger, and every refusal as an RFC 9457 problem with a stable reason."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from identity import jose
from identity.anchors import anchor_digest
from identity.issuance import PROOF_TYP, IssuanceRequestError, NonceStore, make_proof
from identity.ledger_trust import status_uri
from identity.presentation import HeldCredential
from ledger.keys import SigningKey
from tests.test_issuance_world import ADMIN_TOKEN, LIST_ID, VCT, World, build_world

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world({"citizen-1": {"claims": {"given_name": "Ada", "birthdate": "1990-12-10"}},
                        "pinned": {"claims": {"given_name": "Bob"}, "holder_keys": ["not-this-key"]}})


def now() -> int:
    return int(time.time())


def nonce(http: TestClient) -> dict[str, Any]:
    response = http.post("/v1/issuance/nonce")
    assert response.status_code == 200
    return dict(response.json())


def request(world: World, key: SigningKey, *, subject: str | None = "citizen-1", vct: str = VCT,
            proof: str | None = None) -> Any:
    if proof is None:
        proof = make_proof(key, aud=world.agency_did, nonce=nonce(world.issuer_http)["nonce"], iat=now())
    body: dict[str, Any] = {"vct": vct, "proof": proof}
    if subject is not None:
        body["subject"] = subject
    return world.issuer_http.post("/v1/issuance/credential", json=body)


def reason(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["reason"])


def test_nonce_is_fresh_and_names_the_issuer(world: World) -> None:
    first, second = nonce(world.issuer_http), nonce(world.issuer_http)
    assert first["nonce"] != second["nonce"] and len(first["nonce"]) >= 20
    assert first["aud"] == world.agency_did and first["expires_at"] > now()


def test_issued_credential_carries_status_and_is_anchored(world: World) -> None:
    key = SigningKey.generate("ES256")
    answer = request(world, key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    held = HeldCredential.parse(body["credential"])
    assert held.payload["iss"] == world.agency_did and held.payload["vct"] == VCT
    assert held.payload["cnf"] == {"jwk": dict(key.public_key.to_jwk())}
    status = held.payload["status"]["status_list"]
    assert status["uri"] == status_uri(LIST_ID) and 0 <= status["idx"] < 1024
    assert held.claims()["age_equal_or_over"]["18"] is True
    # the anchor on the ledger is the salted digest of this very credential
    digest = anchor_digest(body["credential"], bytes.fromhex(body["anchor_salt"]))
    assert digest.hex() == body["anchor"]
    record = world.light_client().anchor(digest, now() * 1000)
    assert record["issuer"] == world.agency_did
    # the agency's own records keep index and salt; the ledger never sees the claims
    mine = [r for r in world.agent.records.all() if r["anchor"] == body["anchor"]]
    assert mine and mine[0]["idx"] == status["idx"] and mine[0]["salt"] == body["anchor_salt"]


def test_status_indices_are_distinct_and_not_sequential(world: World) -> None:
    indices = [HeldCredential.parse(request(world, SigningKey.generate()).json()["credential"])
               .payload["status"]["status_list"]["idx"] for _ in range(5)]
    assert len(set(indices)) == 5
    assert sorted(indices) != list(range(min(indices), min(indices) + 5))  # random, not a counter


def test_a_replayed_nonce_is_refused(world: World) -> None:
    key = SigningKey.generate()
    proof = make_proof(key, aud=world.agency_did, nonce=nonce(world.issuer_http)["nonce"], iat=now())
    assert request(world, key, proof=proof).status_code == 200
    assert reason(request(world, key, proof=proof), 400) == "nonce-used"


def test_a_nonce_the_issuer_never_gave_is_refused(world: World) -> None:
    key = SigningKey.generate()
    proof = make_proof(key, aud=world.agency_did, nonce="made-up-nonce-000000", iat=now())
    assert reason(request(world, key, proof=proof), 400) == "nonce-unknown"


def test_a_proof_signed_by_another_key_is_refused(world: World) -> None:
    claimed, signer = SigningKey.generate(), SigningKey.generate()
    header = {"typ": PROOF_TYP, "jwk": dict(claimed.public_key.to_jwk())}
    proof = jose.sign(header, {"aud": world.agency_did, "nonce": nonce(world.issuer_http)["nonce"],
                               "iat": now()}, signer)
    assert reason(request(world, claimed, proof=proof), 400) == "proof-bad-signature"


def test_an_unknown_subject_is_refused(world: World) -> None:
    assert reason(request(world, SigningKey.generate(), subject="nobody"), 404) == "unknown-subject"
    assert reason(request(world, SigningKey.generate(), subject=None), 404) == "unknown-subject"


def test_a_pinned_subject_accepts_only_its_keys(world: World) -> None:
    assert reason(request(world, SigningKey.generate(), subject="pinned"), 403) == "holder-key-not-allowed"


@pytest.mark.parametrize(("change", "expected"), [
    ({"aud": "did:imi:someoneElse"}, "proof-wrong-aud"),
    ({"iat": -1000}, "proof-stale"),
    ({"iat": +1000}, "proof-future"),
    ({"typ": "JWT"}, "wrong-proof-typ"),
])
def test_proof_defects_have_their_reason(world: World, change: dict[str, Any], expected: str) -> None:
    key = SigningKey.generate()
    payload = {"aud": change.get("aud", world.agency_did), "nonce": nonce(world.issuer_http)["nonce"],
               "iat": now() + change.get("iat", 0)}
    proof = jose.sign({"typ": change.get("typ", PROOF_TYP), "jwk": dict(key.public_key.to_jwk())}, payload, key)
    assert reason(request(world, key, proof=proof), 400) == expected


def test_a_type_the_issuer_is_not_accredited_for_is_refused(world: World) -> None:
    assert reason(request(world, SigningKey.generate(), vct="urn:other:1"), 400) == "vct-not-offered"


def test_malformed_bodies_are_problems_not_500s(world: World) -> None:
    http = world.issuer_http
    assert reason(http.post("/v1/issuance/credential", content=b"{", headers={"content-type": "application/json"}),
                  400) == "malformed-json"
    assert reason(http.post("/v1/issuance/credential", json={"vct": VCT}), 422) == "missing-field"
    assert reason(http.post("/v1/issuance/credential", json={"vct": VCT, "proof": "x", "extra": 1}),
                  422) == "unknown-field"
    assert reason(request(world, SigningKey.generate(), proof="not.a.jws"), 400) == "bad-proof"
    assert reason(http.post("/v1/issuance/revoke", json={"idx": -1}, headers=ADMIN), 422) == "bad-field"


def test_status_endpoints_need_the_admin_token(world: World) -> None:
    http = world.issuer_http
    assert reason(http.post("/v1/issuance/suspend", json={"idx": 1}), 401) == "admin-unauthorized"
    wrong = {"authorization": "Bearer nope"}
    assert reason(http.post("/v1/issuance/suspend", json={"idx": 1}, headers=wrong), 401) == "admin-unauthorized"


def test_status_changes_follow_the_ledger_lifecycle(world: World) -> None:
    http = world.issuer_http
    idx = HeldCredential.parse(request(world, SigningKey.generate()).json()["credential"]) \
        .payload["status"]["status_list"]["idx"]
    light = world.light_client()
    ok = http.post("/v1/issuance/suspend", json={"idx": idx}, headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["height"] > 0
    assert light.status(LIST_ID, idx, now() * 1000) == 2
    assert http.post("/v1/issuance/reinstate", json={"idx": idx}, headers=ADMIN).status_code == 200
    assert light.status(LIST_ID, idx, now() * 1000) == 0
    assert http.post("/v1/issuance/revoke", json={"idx": idx}, headers=ADMIN).status_code == 200
    assert light.status(LIST_ID, idx, now() * 1000) == 1
    assert reason(http.post("/v1/issuance/reinstate", json={"idx": idx}, headers=ADMIN), 409) == "status-final"


def test_without_a_token_only_loopback_may_change_status(world: World) -> None:
    from identity.http.issuer_service import create_issuer_app

    remote = TestClient(create_issuer_app(world.agent), raise_server_exceptions=False)  # host "testclient"
    assert reason(remote.post("/v1/issuance/revoke", json={"idx": 5}), 403) == "admin-loopback-only"


def test_nonce_store_expiry_and_bound() -> None:
    store = NonceStore(ttl_s=10, entries_max=2)
    first = store.issue(100)
    with pytest.raises(IssuanceRequestError) as exc:
        store.consume(first.value, 110)
    assert exc.value.reason == "nonce-expired"
    store.issue(200)
    store.issue(200)
    with pytest.raises(IssuanceRequestError) as exc:
        store.issue(201)
    assert exc.value.reason == "too-many-nonces"
    store.issue(211)  # the old ones expired and were dropped


def test_a_did_proof_for_a_did_not_on_the_ledger_is_refused(world: World) -> None:
    from identity import did as didmod

    key, next_key = SigningKey.generate(), SigningKey.generate()
    did = didmod.derive_did(key.public_key.to_jwk(), didmod.key_commitment(next_key.public_key.to_jwk()))
    proof = make_proof(key, aud=world.agency_did, nonce=nonce(world.issuer_http)["nonce"], iat=now(), did=did)
    assert reason(request(world, key, proof=proof, subject=None), 400) == "holder-did-unknown"
