"""The verifier service over a real in-process ledger: a registered question, a wallet's
answer by direct_post, a verdict with only the answer — and every way to misuse it."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from identity import oid4vp, services
from identity.errors import NotFoundError
from identity.fetcher import IdentityHttpFetcher
from identity.http.node_routes import identity_router
from identity.http.verifier_service import VerifierConfig, create_verifier_app, ledger_verify_one
from identity.ledger_trust import LedgerServiceKeys, status_uri
from identity.light_client import LightClient
from identity.sdjwt import HolderBinding, issue
from identity.wallet import KdfParams, Wallet
from node.api.app import create_app
from node.api.problems import ApiProblem
from tests.test_identity_api_scene import LIST_ID, VCT, Scene, build_scene
from tests.test_identity_helpers import Holder, det_key

TOKEN = "staff-token-for-tests"
PUBLIC = "http://127.0.0.1:8710"
QUESTION = {"credentials": [{"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [VCT]},
                             "claims": [{"path": ["age_equal_or_over", "18"], "values": [True]}]}]}


@dataclass
class World:
    scene: Scene
    desk: Holder
    light: LightClient
    verifier: TestClient
    wallet: Wallet
    callbacks: list[tuple[str, Any]]
    app: Any

    def ask(self, query: dict[str, Any] = QUESTION, **extra: Any) -> Any:
        return self.verifier.post("/v1/requests", json={"dcql_query": query, **extra},
                                  headers={"Authorization": f"Bearer {TOKEN}"})

    def result(self, request_id: str) -> dict[str, Any]:
        return self.verifier.get(f"/v1/requests/{request_id}", headers={"Authorization": f"Bearer {TOKEN}"}).json()

    def now(self) -> int:
        return self.scene.clock() // 1000

    def wallet_opens(self, uri: str) -> oid4vp.AuthorizationRequest:
        client_id, request_uri = oid4vp.parse_authorization_uri(uri)
        path = urllib.parse.urlsplit(request_uri).path
        fetched = self.verifier.get(path)
        assert fetched.headers["content-type"].startswith("application/oauth-authz-req+jwt")
        request = oid4vp.open_request(fetched.text, client_id=client_id, service_key=LedgerServiceKeys(
            self.light, clock_ms=self.scene.clock), now=self.now())
        record = self.light.service(request.service_did, self.scene.clock())
        assert services.may_ask(record, request.dcql_query) == []
        return request

    def post(self, form: dict[str, str]) -> Any:
        return self.verifier.post("/v1/responses", content=urllib.parse.urlencode(form),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})


def _credential(s: Scene, wallet: Wallet, idx: int) -> str:
    key_id = wallet.new_key("ES256")
    return issue({"given_name": "Alice", "birthdate": "1990-01-01"}, issuer_key=s.agency.key, iss=s.agency.did,
                 vct=VCT, holder=HolderBinding.from_key(wallet.public_key(key_id)), iat=s.clock.now_ms // 1000,
                 status={"status_list": {"idx": idx, "uri": status_uri(LIST_ID)}},
                 kid=f"{s.agency.did}#{s.agency.key.key_id}", predicates={"age_equal_or_over": [18]}).serialize()


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return make_world(tmp_path, PUBLIC)


def make_world(tmp_path: Path, public_url: str, *, wall_clock: bool = False) -> World:
    """A ledger with a registered desk service, its verifier app, and a wallet holding a PID.
    With ``wall_clock`` the blocks from here on carry the real time (for clients that judge
    freshness by their own clock, like the CLI)."""
    s = build_scene()
    if wall_clock:
        import time
        s.clock.now_ms = max(s.clock.now_ms, int(time.time() * 1000))
    desk = Holder(det_key("desk/0"), det_key("desk/1"), "desk")
    s.block(s.create_did(desk))
    s.block(s.gov("gov.service_register", {
        "did": desk.did, "name": {"en": "Community desk", "zh-CN": "社区服务台"},
        "purpose": {"en": "Age check", "zh-CN": "年龄核验"},
        "queries": [{"vct": VCT, "claims": [["age_equal_or_over", "18"], ["given_name"]]}]}))
    node = TestClient(create_app(s.node, extra_routers=[identity_router]), raise_server_exceptions=False)
    light = LightClient(s.node.genesis, IdentityHttpFetcher("http://testserver", client=node), freshness_ms=60_000)

    def registration() -> Any:
        try:
            return light.service(desk.did, s.clock())
        except NotFoundError:
            return None

    callbacks: list[tuple[str, Any]] = []
    config = VerifierConfig(desk.did, desk.key, f"{desk.did}#{desk.key.key_id}", public_url, TOKEN)
    app = create_verifier_app(config, registration=registration, verify_one=ledger_verify_one(light),
                              clock_s=lambda: s.clock() // 1000,
                              post_callback=lambda uri, verdict: callbacks.append((uri, verdict)))
    wallet = Wallet.create(tmp_path / "w.json", "pw", kdf=KdfParams.fastest())
    wallet.add_credential(_credential(s, wallet, idx=3), now=s.clock() // 1000)
    return World(s, desk, light, TestClient(app, raise_server_exceptions=False), wallet, callbacks, app)


def test_a_registered_question_gets_only_its_answer(world: World) -> None:
    created = world.ask(callback_uri="http://127.0.0.1:9/verdicts")
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["request_uri"].startswith("openid4vp://?client_id=decentralized_identifier%3Adid%3Aimi%3A")
    assert world.result(body["id"])["state"] == "pending"
    request = world.wallet_opens(body["request_uri"])
    token = oid4vp.wallet_answer(world.wallet, request, now=world.now(), verifier="Community desk")
    answer = world.post({"vp_token": json.dumps(token), "state": request.state})
    assert answer.status_code == 200, answer.text
    result = world.result(body["id"])
    assert result["state"] == "done" and result["valid"] is True, result["detail"]
    assert result["claims"] == {"pid": {"vct": VCT, "iss": world.scene.agency.did, "age_equal_or_over.18": True}}
    assert world.callbacks == [("http://127.0.0.1:9/verdicts", {"state": "done", **{k: result[k] for k in (
        "valid", "reason", "claims", "detail")}})]
    # the same vp_token again: refused, and the first verdict stands
    replay = world.post({"vp_token": json.dumps(token), "state": request.state})
    assert replay.status_code == 400 and replay.json()["reason"] == "response-already-received"
    assert world.result(body["id"])["valid"] is True
    assert world.verifier.get(urllib.parse.urlsplit(oid4vp.parse_authorization_uri(body["request_uri"])[1]).path
                              ).status_code == 404


@pytest.mark.parametrize(("idx", "reason"), [(7, "revoked"), (9, "suspended")])
def test_revoked_or_suspended_credentials_are_judged_invalid(world: World, idx: int, reason: str) -> None:
    world.wallet.remove(world.wallet.credentials()[0].id)
    world.wallet.add_credential(_credential(world.scene, world.wallet, idx=idx), now=world.now())
    body = world.ask().json()
    request = world.wallet_opens(body["request_uri"])
    token = oid4vp.wallet_answer(world.wallet, request, now=world.now())
    assert world.post({"vp_token": json.dumps(token), "state": request.state}).status_code == 200
    result = world.result(body["id"])
    assert result["valid"] is False and reason in result["reason"] and result["claims"] == {}


def test_a_question_beyond_the_registration_is_refused_before_anything_is_signed(world: World) -> None:
    query = {"credentials": [{"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [VCT]},
                              "claims": [{"path": ["birthdate"]}]}]}
    answer = world.ask(query)
    assert answer.status_code == 403 and answer.json()["reason"] == "beyond-registration"
    assert "birthdate" in answer.json()["detail"]


def test_a_suspended_service_cannot_ask(world: World) -> None:
    world.scene.block(world.scene.gov("gov.service_suspend", {"did": world.desk.did}))
    answer = world.ask()
    assert answer.status_code == 403 and "suspended" in answer.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"Authorization": "Bearer wrong", "X-Forwarded-For": "127.0.0.1"}])
def test_staff_routes_need_the_token(world: World, headers: dict[str, str]) -> None:
    assert world.verifier.post("/v1/requests", json={"dcql_query": QUESTION}, headers=headers).status_code == 401
    assert world.verifier.get("/v1/requests/x", headers=headers).status_code == 401


@pytest.mark.parametrize(("form", "content_type", "status", "reason"), [
    ({"vp_token": "{}", "state": "nope"}, "application/x-www-form-urlencoded", 400, "unknown-state"),
    ({"vp_token": "{}"}, "application/x-www-form-urlencoded", 400, "unknown-state"),
    ({"vp_token": "{}", "state": "x"}, "application/json", 415, "unsupported-media-type"),
])
def test_bad_responses_get_a_clear_4xx(world: World, form: dict[str, str], content_type: str, status: int,
                                       reason: str) -> None:
    answer = world.verifier.post("/v1/responses", content=urllib.parse.urlencode(form),
                                 headers={"Content-Type": content_type})
    assert answer.status_code == status and answer.json()["reason"] == reason


def test_a_malformed_vp_token_ends_the_request_invalid(world: World) -> None:
    body = world.ask().json()
    request = world.wallet_opens(body["request_uri"])
    assert world.post({"vp_token": "not json", "state": request.state}).status_code == 200
    assert world.result(body["id"])["reason"] == "invalid-vp-token"


def test_a_wallet_that_declines_is_recorded(world: World) -> None:
    body = world.ask().json()
    request = world.wallet_opens(body["request_uri"])
    assert world.post({"error": "access_denied", "state": request.state}).status_code == 200
    assert world.result(body["id"]) | {"detail": ""} == {"state": "done", "valid": False,
                                                        "reason": "access_denied", "claims": {}, "detail": ""}


@pytest.mark.parametrize("query", [{"credentials": []}, {"credentials": [{"id": "a", "format": "mso_mdoc"}]}, []])
def test_a_malformed_query_is_a_400(world: World, query: Any) -> None:
    answer = world.ask(query)
    assert answer.status_code in (400, 422) and answer.headers["content-type"] == "application/problem+json"


def test_open_requests_are_bounded_and_expire(world: World) -> None:
    from identity.http import verifier_service

    sessions = verifier_service.Sessions(ttl_s=10, entries_max=2)
    request = oid4vp.new_request("did:imi:x", "https://a.example/r", oid4vp.dcql.parse_query(QUESTION),
                                 nonce="n", state="s", now=100, lifetime_s=10)
    sessions.add("a", verifier_service._Pending(request, "jwt", None), 100)
    sessions.add("b", verifier_service._Pending(vars_of(request, state="t"), "jwt", None), 100)
    with pytest.raises(ApiProblem) as err:
        sessions.add("c", verifier_service._Pending(vars_of(request, state="u"), "jwt", None), 100)
    assert err.value.reason == "too-many-requests"
    assert sessions.get("a", 111) is None  # expired
    sessions.add("c", verifier_service._Pending(vars_of(request, state="u", iat=111), "jwt", None), 111)
    assert sessions.get("b", 111) is None and sessions.get("c", 111) is not None


def vars_of(request: oid4vp.AuthorizationRequest, **change: Any) -> oid4vp.AuthorizationRequest:
    import dataclasses
    return dataclasses.replace(request, **change)


# --- the counter page -----------------------------------------------------------------------------
def _sign_in(world: World) -> str:
    page = world.verifier.post("/counter/login", content="token=" + TOKEN, follow_redirects=False,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert page.status_code == 303 and "imi_counter" in page.cookies
    home = world.verifier.get("/counter?lang=en")
    assert home.status_code == 200
    return home.text.split('name="csrf" value="')[1].split('"')[0]


def test_counter_page_asks_a_registered_question_and_shows_only_the_answer(world: World) -> None:
    assert 'type="password"' in world.verifier.get("/counter").text  # signed out: the sign-in form
    csrf = _sign_in(world)
    home = world.verifier.get("/counter").text
    assert "Aged 18 or over" in home and "Community desk" in home and "Age check" in home
    asked = world.verifier.post("/counter/ask", content=urllib.parse.urlencode(
        {"csrf": csrf, "claim": "0|age_equal_or_over.18"}), follow_redirects=False,
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert asked.status_code == 303
    waiting = world.verifier.get(asked.headers["location"])
    assert "<svg" in waiting.text and 'http-equiv="refresh"' in waiting.text
    assert waiting.headers["content-security-policy"].startswith("default-src 'none'")
    uri = waiting.text.split('class="button" href="')[1].split('"')[0].replace("&amp;", "&")
    request = world.wallet_opens(uri)
    assert [c.claims[0].path for c in request.dcql_query.credentials] == [("age_equal_or_over", "18")]
    token = oid4vp.wallet_answer(world.wallet, request, now=world.now())
    world.post({"vp_token": json.dumps(token), "state": request.state})
    done = world.verifier.get(asked.headers["location"]).text
    assert "Verified" in done and "<dd>Yes</dd>" in done and "given" not in done and "1990" not in done
    assert 'http-equiv="refresh"' not in done
    zh = world.verifier.get(asked.headers["location"] + "?lang=zh-CN").text
    assert "核验通过" in zh and "年满 18 岁" in zh and 'lang="zh-CN"' in zh


def test_counter_refuses_forged_forms_and_unregistered_choices(world: World) -> None:
    csrf = _sign_in(world)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    forged = world.verifier.post("/counter/ask", content="csrf=nope&claim=0%7Cage_equal_or_over.18", headers=form)
    assert forged.status_code == 403 and forged.json()["reason"] == "csrf-mismatch"
    beyond = world.verifier.post("/counter/ask", content=urllib.parse.urlencode(
        {"csrf": csrf, "claim": "0|birthdate"}), headers=form)
    assert beyond.status_code == 400 and "Choose at least one item" in beyond.text


def test_counter_sign_in_needs_the_token(world: World) -> None:
    page = world.verifier.post("/counter/login", content="token=wrong",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert page.status_code == 401 and "imi_counter" not in page.cookies
    assert world.verifier.get("/counter/requests/x", follow_redirects=False).status_code == 303
    assert world.verifier.post("/counter/ask", content="claim=0%7Cx", follow_redirects=False,
                               headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 303


def test_every_page_word_exists_in_both_languages() -> None:
    from identity.http.i18n import LANGUAGES, MESSAGES

    keys = [set(MESSAGES[lang]) for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys) and all(all(MESSAGES[lang].values()) for lang in LANGUAGES)
