"""The issuer service over a DevNode: OpenID4VCI 1.0 (metadata, offers, pre-authorized code
with tx_code, token, nonce, credential, batch), enrolment as the one door, and every refusal
with the spec's error code or 401 — nothing issued, nothing stored."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi.testclient import TestClient

from identity import jose
from identity.anchors import anchor_digest
from identity.constants import PRE_AUTHORIZED_GRANT, TOKEN_REQUESTS_BURST
from identity.holder import register_did
from identity.http.issuer_service import create_issuer_app
from identity.issuance import PROOF_TYP, make_proof
from identity.ledger_trust import status_uri
from identity.oid4vci import NonceMint, check_offer, parse_offer_uri
from identity.presentation import HeldCredential
from ledger.keys import SigningKey
from tests.serving import serve_in_thread
from tests.test_issuance_world import ADMIN_TOKEN, ISSUER_URL, LIST_ID, VCT, World, build_world

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
SUBJECTS = ("citizen-1", "citizen-2", "citizen-3", "citizen-4", "victim", "mallory", "batch", "did-holder",
            "pinless", "stale", "aud", "twice", "expired", "wrong-pin", "rate")


@pytest.fixture(scope="module")
def world() -> World:
    return build_world({s: {"claims": {"given_name": s.title(), "birthdate": "1990-12-10"}} for s in SUBJECTS})


def now() -> int:
    return int(time.time())


def offer(world: World, subject: str, *, batch: int = 1, tx_code: bool = True, status: int = 200) -> dict[str, Any]:
    answer = world.issuer_http.post("/v1/admin/offers", json={"subject": subject, "vcts": [VCT], "batch": batch,
                                                              "tx_code": tx_code}, headers=ADMIN)
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def code_of(made: dict[str, Any]) -> str:
    parsed, _ = parse_offer_uri(made["offer_uri"])
    return check_offer(parsed).code


def token(http: TestClient, code: str, tx_code: str | None) -> Any:
    form = {"grant_type": PRE_AUTHORIZED_GRANT, "pre-authorized_code": code}
    if tx_code is not None:
        form["tx_code"] = tx_code
    return http.post("/token", data=form)


def access(world: World, made: dict[str, Any]) -> str:
    answer = token(world.issuer_http, code_of(made), made["tx_code"])
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def c_nonce(http: TestClient) -> str:
    answer = http.post("/nonce")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    return str(answer.json()["c_nonce"])


def credential(world: World, bearer: str | None, proofs: list[str], config: str = VCT) -> Any:
    headers = {"authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return world.issuer_http.post("/credential", json={"credential_configuration_id": config,
                                                       "proofs": {"jwt": proofs}}, headers=headers)


def proof(world: World, key: SigningKey, *, did: str | None = None, aud: str = ISSUER_URL,
          nonce: str | None = None) -> str:
    return make_proof(key, aud=aud, nonce=nonce or c_nonce(world.issuer_http), iat=now(), did=did)


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"])


def issued_count(world: World) -> int:
    return len(world.agent.records.all())


def holder_did(world: World) -> tuple[str, SigningKey]:
    """A citizen's DID on the ledger (public: anyone can read it)."""
    key = SigningKey.generate()
    return register_did(world.node_client(), key)[0], key


# --- metadata -------------------------------------------------------------------------------
def test_issuer_metadata_lists_the_accredited_types(world: World) -> None:
    meta = world.issuer_http.get("/.well-known/openid-credential-issuer").json()
    assert meta["credential_issuer"] == ISSUER_URL and meta["imi_issuer_did"] == world.agency_did
    assert meta["credential_endpoint"] == ISSUER_URL + "/credential"
    assert meta["nonce_endpoint"] == ISSUER_URL + "/nonce"
    config = meta["credential_configurations_supported"][VCT]
    assert config["format"] == "dc+sd-jwt" and config["vct"] == VCT
    assert config["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"] == ["ES256", "EdDSA"]
    assert {d["locale"] for d in config["credential_metadata"]["display"]} == {"zh-CN", "en"}
    # accredited for the recovery type too, but it is not published: nothing to offer
    assert set(meta["credential_configurations_supported"]) == {VCT}
    auth = world.issuer_http.get("/.well-known/oauth-authorization-server").json()
    assert auth["issuer"] == ISSUER_URL and auth["token_endpoint"] == ISSUER_URL + "/token"
    assert auth["grant_types_supported"] == [PRE_AUTHORIZED_GRANT]


# --- the happy paths ------------------------------------------------------------------------------
def test_an_enrolment_offer_binds_the_first_holder_and_issues(world: World) -> None:
    made = offer(world, "citizen-1")
    assert made["enrol"] is True and made["tx_code"] is not None and len(made["tx_code"]) == 6
    assert made["offer_uri"].startswith("openid-credential-offer://?credential_offer=")
    key = SigningKey.generate("ES256")
    answer = credential(world, access(world, made), [proof(world, key)])
    assert answer.status_code == 200, answer.text
    (entry,) = answer.json()["credentials"]
    held = HeldCredential.parse(entry["credential"])
    assert held.payload["iss"] == world.agency_did and held.payload["vct"] == VCT
    assert held.payload["cnf"] == {"jwk": dict(key.public_key.to_jwk())}
    status = held.payload["status"]["status_list"]
    assert status["uri"] == status_uri(LIST_ID) and 0 <= status["idx"] < 1024
    assert held.claims()["age_equal_or_over"]["18"] is True
    enrolment = world.agent.records.enrolment("citizen-1")
    assert enrolment is not None and (enrolment.kind, enrolment.holder) == ("jwk", key.public_key.thumbprint())
    # the anchor on the ledger is the salted digest of this very credential
    (record,) = world.agent.records.for_subject("citizen-1")
    assert record["idx"] == status["idx"]
    digest = anchor_digest(entry["credential"], bytes.fromhex(record["salt"]))
    assert digest.hex() == record["anchor"]
    assert world.light_client().anchor(digest, now() * 1000)["issuer"] == world.agency_did
    # a later offer for the enrolled subject needs no PIN, but a proof by the enrolled key
    later = offer(world, "citizen-1", tx_code=False)
    assert later["enrol"] is False and later["tx_code"] is None
    assert credential(world, access(world, later), [proof(world, key)]).status_code == 200


def test_a_batch_binds_one_credential_to_each_distinct_key(world: World) -> None:
    made = offer(world, "batch", batch=3)
    keys = [SigningKey.generate("ES256"), SigningKey.generate("EdDSA"), SigningKey.generate("ES256")]
    nonce = c_nonce(world.issuer_http)  # one c_nonce may serve the whole batch
    answer = credential(world, access(world, made), [proof(world, k, nonce=nonce) for k in keys])
    assert answer.status_code == 200, answer.text
    payloads = [HeldCredential.parse(c["credential"]).payload for c in answer.json()["credentials"]]
    assert [p["cnf"]["jwk"] for p in payloads] == [dict(k.public_key.to_jwk()) for k in keys]
    indices = {p["status"]["status_list"]["idx"] for p in payloads}
    assert len(indices) == 3  # distinct status entries: presentations cannot be linked by index
    assert len({p["_sd"][0] for p in payloads}) == 3  # distinct salts, distinct signatures


def test_the_same_key_twice_in_a_batch_is_refused(world: World) -> None:
    made = offer(world, "citizen-3", batch=2)
    key = SigningKey.generate()
    before = issued_count(world)
    assert error(credential(world, access(world, made), [proof(world, key), proof(world, key)]), 400) \
        == "invalid_proof"
    assert issued_count(world) == before


def test_one_access_token_redeems_each_offered_type_once() -> None:
    """OpenID4VCI 1.0: one access token covers every configuration of its offer — each may be
    asked for once; a second ask, or a type the offer did not name, is insufficient_scope."""
    second = "urn:imi:test:residence:1"
    w = build_world({"both": {"claims": {"given_name": "Both", "birthdate": "1990-12-10"}}})
    w.gov("gov.issuer_accredit", {"did": w.agency_did, "name": "Civil Affairs", "vcts": [VCT, second]})
    nc = w.node_client()
    nc.submit(nc.build("vct.publish", w.agency_did, {"vct": second, "name": "Residence", "claims": ["birthdate", "given_name"]},
                       w.agency_key))
    made = w.issuer_http.post("/v1/admin/offers", json={"subject": "both", "vcts": [VCT, second], "tx_code": True},
                              headers=ADMIN)
    assert made.status_code == 200, made.text
    bearer = access(w, made.json())
    key = SigningKey.generate("ES256")
    first = credential(w, bearer, [proof(w, key)], config=second)
    assert first.status_code == 200, first.text
    assert HeldCredential.parse(first.json()["credentials"][0]["credential"]).payload["vct"] == second
    assert error(credential(w, bearer, [proof(w, key)], config=second), 403) == "insufficient_scope"
    other = credential(w, bearer, [proof(w, key)])
    assert other.status_code == 200, other.text  # the offer's other type, same token
    assert error(credential(w, bearer, [proof(w, key)]), 401) == "invalid_token"  # spent with its last type
    assert len(w.agent.records.for_subject("both")) == 2


def test_an_offer_by_reference_resolves_once(world: World) -> None:
    made = offer(world, "citizen-4")
    _, reference = parse_offer_uri(made["offer_uri_by_reference"])
    assert reference is not None and reference.startswith(ISSUER_URL + "/offers/")
    fetched = world.issuer_http.get(reference.removeprefix(ISSUER_URL))
    assert fetched.status_code == 200 and fetched.json() == made["credential_offer"]
    access(world, made)  # redeemed: the reference is gone
    assert world.issuer_http.get(reference.removeprefix(ISSUER_URL)).status_code == 404
    assert unquote(made["offer_uri"].split("=", 1)[1]).startswith("{")


def test_a_did_holder_enrolled_by_staff_receives_with_its_current_key(world: World) -> None:
    did, key = holder_did(world)
    enrolled = world.issuer_http.post("/v1/admin/enrol", json={"subject": "did-holder", "did": did}, headers=ADMIN)
    assert enrolled.status_code == 200 and enrolled.json()["holder"] == did
    made = offer(world, "did-holder", tx_code=False)
    answer = credential(world, access(world, made), [proof(world, key, did=did)])
    assert answer.status_code == 200, answer.text
    assert HeldCredential.parse(answer.json()["credentials"][0]["credential"]).payload["cnf"] == {"kid": did}


# --- the attack of issue 17, as a regression test ----------------------------------------------
def test_a_fresh_key_and_a_public_did_get_nothing(world: World) -> None:
    victim_did, _ = holder_did(world)
    assert world.issuer_http.post("/v1/admin/enrol", json={"subject": "victim", "did": victim_did},
                                  headers=ADMIN).status_code == 200
    attacker = SigningKey.generate()
    before = issued_count(world)
    # no access token: the credential endpoint does not even read the request
    assert error(credential(world, None, [proof(world, attacker)]), 401) == "invalid_token"
    assert error(credential(world, "guessed", [proof(world, attacker)]), 401) == "invalid_token"
    # the old free-text-subject endpoint is gone
    assert world.issuer_http.post("/v1/issuance/credential", json={"vct": VCT, "subject": victim_did,
                                                                   "proof": proof(world, attacker)}).status_code == 404
    # a guessed pre-authorized code
    assert error(token(world.issuer_http, "guess", "000000"), 400) == "invalid_grant"
    # even with the victim's offer and PIN leaked, a key that is not the enrolled holder gets nothing
    leaked = access(world, offer(world, "victim", tx_code=True))
    assert error(credential(world, leaked, [proof(world, attacker)]), 400) == "credential_request_denied"
    # nor a proof that names the victim's DID but is signed by the attacker's key
    forged = make_proof(attacker, aud=ISSUER_URL, nonce=c_nonce(world.issuer_http), iat=now(), did=victim_did)
    assert error(credential(world, leaked, [forged]), 400) == "invalid_proof"
    # and the attacker's own enrolment (mallory) covers mallory's record only
    mine = access(world, offer(world, "mallory"))
    assert credential(world, mine, [proof(world, attacker)]).status_code == 200
    assert issued_count(world) == before + 1
    assert all(r["subject"] != "victim" for r in world.agent.records.all())


# --- negatives of the protocol -----------------------------------------------------------------
def test_a_wrong_tx_code_is_invalid_grant_and_burns_the_code(world: World) -> None:
    made = offer(world, "wrong-pin")
    code = code_of(made)
    wrong = "0" * 6 if made["tx_code"] != "0" * 6 else "1" * 6
    assert error(token(world.issuer_http, code, None), 400) == "invalid_request"  # PIN missing
    for _ in range(5):
        assert error(token(world.issuer_http, code, wrong), 400) == "invalid_grant"
    assert error(token(world.issuer_http, code, made["tx_code"]), 400) == "invalid_grant"  # burnt


def test_a_code_redeemed_twice_is_invalid_grant(world: World) -> None:
    made = offer(world, "twice")
    assert token(world.issuer_http, code_of(made), made["tx_code"]).status_code == 200
    assert error(token(world.issuer_http, code_of(made), made["tx_code"]), 400) == "invalid_grant"


def test_an_expired_offer_is_invalid_grant(world: World) -> None:
    clock = [now()]
    later = TestClient(create_issuer_app(world.agent, admin_token=ADMIN_TOKEN, clock_s=lambda: clock[0]),
                       base_url=ISSUER_URL, raise_server_exceptions=False)
    made = offer(world, "expired")
    clock[0] += world.agent.offers.ttl_s + 1
    assert error(token(later, code_of(made), made["tx_code"]), 400) == "invalid_grant"


def test_stale_and_foreign_nonces_are_invalid_nonce(world: World) -> None:
    made = offer(world, "stale")
    bearer = access(world, made)
    key = SigningKey.generate()
    foreign = NonceMint().issue(now())
    before = issued_count(world)
    assert error(credential(world, bearer, [proof(world, key, nonce=foreign)]), 400) == "invalid_nonce"
    stale = world.agent.nonces.issue(now() - world.agent.nonces.ttl_s - 1)
    assert error(credential(world, bearer, [proof(world, key, nonce=stale)]), 400) == "invalid_nonce"
    used = c_nonce(world.issuer_http)
    assert credential(world, bearer, [proof(world, key, nonce=used)]).status_code == 200
    again = access(world, offer(world, "stale", tx_code=False))
    assert error(credential(world, again, [proof(world, key, nonce=used)]), 400) == "invalid_nonce"
    assert issued_count(world) == before + 1


def test_a_proof_for_another_audience_is_invalid_proof(world: World) -> None:
    bearer = access(world, offer(world, "aud"))
    key = SigningKey.generate()
    before = issued_count(world)
    for aud in (world.agency_did, "https://phish.example"):
        assert error(credential(world, bearer, [proof(world, key, aud=aud)]), 400) == "invalid_proof"
    claimed, signer = SigningKey.generate(), SigningKey.generate()
    header = {"typ": PROOF_TYP, "jwk": dict(claimed.public_key.to_jwk())}
    forged = jose.sign(header, {"aud": ISSUER_URL, "nonce": c_nonce(world.issuer_http), "iat": now()}, signer)
    assert error(credential(world, bearer, [forged]), 400) == "invalid_proof"
    wrong_typ = jose.sign({"typ": "JWT", "jwk": dict(key.public_key.to_jwk())},
                          {"aud": ISSUER_URL, "nonce": c_nonce(world.issuer_http), "iat": now()}, key)
    assert error(credential(world, bearer, [wrong_typ]), 400) == "invalid_proof"
    assert issued_count(world) == before


def test_a_holder_key_other_than_the_enrolled_one_is_denied(world: World) -> None:
    enrolled, other = SigningKey.generate(), SigningKey.generate()
    assert credential(world, access(world, offer(world, "citizen-2")), [proof(world, enrolled)]).status_code == 200
    before = issued_count(world)
    bearer = access(world, offer(world, "citizen-2", tx_code=False))
    assert error(credential(world, bearer, [proof(world, other)]), 400) == "credential_request_denied"
    assert issued_count(world) == before
    # the enrolled key may bring other keys along in a batch
    batch = access(world, offer(world, "citizen-2", tx_code=False, batch=2))
    nonce = c_nonce(world.issuer_http)
    answer = credential(world, batch, [proof(world, other, nonce=nonce), proof(world, enrolled, nonce=nonce)])
    assert answer.status_code == 200 and len(answer.json()["credentials"]) == 2


def test_a_subject_not_enrolled_needs_a_pin_and_an_unknown_one_gets_no_offer(world: World) -> None:
    made = world.issuer_http.post("/v1/admin/offers", json={"subject": "pinless", "vcts": [VCT], "tx_code": False},
                                  headers=ADMIN)
    assert made.status_code == 400 and made.json()["reason"] == "tx-code-required"
    unknown = world.issuer_http.post("/v1/admin/offers", json={"subject": "nobody", "vcts": [VCT]}, headers=ADMIN)
    assert unknown.status_code == 404 and unknown.json()["reason"] == "unknown-subject"
    other = world.issuer_http.post("/v1/admin/offers", json={"subject": "pinless", "vcts": ["urn:other:1"]},
                                   headers=ADMIN)
    assert other.status_code == 400 and other.json()["reason"] == "vct-not-offered"


def test_bad_credential_requests_have_their_error_code(world: World) -> None:
    bearer = access(world, offer(world, "citizen-3"))
    http = world.issuer_http
    auth = {"authorization": f"Bearer {bearer}"}
    assert error(http.post("/credential", content=b"{", headers={**auth, "content-type": "application/json"}),
                 400) == "invalid_credential_request"
    assert error(http.post("/credential", json={"proofs": {"jwt": ["x"]}}, headers=auth),
                 400) == "invalid_credential_request"
    assert error(http.post("/credential", json={"credential_configuration_id": VCT}, headers=auth),
                 400) == "invalid_proof"
    assert error(credential(world, bearer, ["not.a.jws"]), 400) == "invalid_proof"
    assert error(credential(world, bearer, [proof(world, SigningKey.generate())], config="urn:other:1"),
                 400) == "unknown_credential_configuration"
    too_many = [proof(world, SigningKey.generate()) for _ in range(11)]
    assert error(credential(world, bearer, too_many), 400) == "invalid_credential_request"
    bad_form = http.post("/token", json={"grant_type": PRE_AUTHORIZED_GRANT})
    assert error(bad_form, 400) == "invalid_request"
    assert error(http.post("/token", data={"grant_type": "authorization_code", "code": "x"}),
                 400) == "unsupported_grant_type"


def test_the_token_endpoint_is_rate_limited_per_client(world: World) -> None:
    app = create_issuer_app(world.agent, admin_token=ADMIN_TOKEN)
    http = TestClient(app, base_url=ISSUER_URL, raise_server_exceptions=False)
    codes = [error(token(http, "nope", None), 400) for _ in range(TOKEN_REQUESTS_BURST)]
    assert set(codes) == {"invalid_grant"}
    limited = token(http, "nope", None)
    assert error(limited, 429) == "slow_down"
    # another client is not locked out
    other = TestClient(app, base_url=ISSUER_URL, raise_server_exceptions=False, client=("10.0.0.9", 5000))
    assert error(token(other, "nope", None), 400) == "invalid_grant"


# --- staff authentication -------------------------------------------------------------------------
def test_staff_endpoints_need_the_token(world: World) -> None:
    http = world.issuer_http
    for path, body in (("/v1/issuance/suspend", {"idx": 1}), ("/v1/admin/offers", {"subject": "x", "vcts": [VCT]}),
                       ("/v1/admin/enrol", {"subject": "x", "did": "did:imi:abc"})):
        for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": f"Basic {ADMIN_TOKEN}"}):
            answer = http.post(path, json=body, headers=headers)
            assert answer.status_code == 401 and answer.json()["reason"] == "admin-unauthorized", (path, headers)
    with pytest.raises(ValueError, match="admin token"):
        create_issuer_app(world.agent, admin_token="")


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A local reverse proxy, as nginx would be: every client arrives from loopback, with
    X-Forwarded-For naming the client."""

    target = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        headers["X-Forwarded-For"] = "127.0.0.1"
        headers["X-Real-IP"] = "127.0.0.1"
        answer = httpx.post(self.target + self.path, content=body, headers=headers, timeout=30)
        self.send_response(answer.status_code)
        self.send_header("content-type", answer.headers.get("content-type", "application/json"))
        self.send_header("content-length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def proxied(world: World) -> Iterator[str]:
    with serve_in_thread(create_issuer_app(world.agent, admin_token=ADMIN_TOKEN)) as port:
        _Proxy.target = f"http://127.0.0.1:{port}"
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


def test_a_loopback_client_through_a_local_proxy_is_still_refused(proxied: str) -> None:
    for action in ("revoke", "suspend", "reinstate"):
        answer = httpx.post(f"{proxied}/v1/issuance/{action}", json={"idx": 5},
                            headers={"X-Forwarded-For": "127.0.0.1"}, timeout=30)
        assert answer.status_code == 401 and answer.json()["reason"] == "admin-unauthorized"
    answer = httpx.post(f"{proxied}/v1/admin/offers", json={"subject": "citizen-1", "vcts": [VCT]}, timeout=30)
    assert answer.status_code == 401


def test_status_changes_follow_the_ledger_lifecycle(world: World) -> None:
    http = world.issuer_http
    (idx,) = [r["idx"] for r in world.agent.records.for_subject("mallory")]
    light = world.light_client()
    ok = http.post("/v1/issuance/suspend", json={"idx": idx}, headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["height"] > 0
    assert light.status(LIST_ID, idx, now() * 1000) == 2
    assert http.post("/v1/issuance/reinstate", json={"idx": idx}, headers=ADMIN).status_code == 200
    assert light.status(LIST_ID, idx, now() * 1000) == 0
    assert http.post("/v1/issuance/revoke", json={"idx": idx}, headers=ADMIN).status_code == 200
    assert light.status(LIST_ID, idx, now() * 1000) == 1
    answer = http.post("/v1/issuance/reinstate", json={"idx": idx}, headers=ADMIN)
    assert answer.status_code == 409 and answer.json()["reason"] == "status-final"
    assert http.post("/v1/issuance/revoke", json={"idx": -1}, headers=ADMIN).status_code == 422
