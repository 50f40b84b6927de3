"""The wallet app (imi wallet serve) over HTTP: loopback only, unlock, consent, history."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from identity.http.wallet_app import create_wallet_app
from tests.test_verifier_service import World, make_world

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture()
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path, "http://127.0.0.1:8710")
    w.wallet.save()
    return w


def _app(world: World, client: tuple[str, int] = ("127.0.0.1", 50000), base: str = "http://127.0.0.1") -> TestClient:
    app = create_wallet_app(world.wallet.path, light=world.light, http=world.verifier, clock_ms=world.scene.clock)
    return TestClient(app, base_url=base, client=client)


def _unlock(app: TestClient) -> str:
    opened = app.post("/unlock", content="password=pw", headers=FORM, follow_redirects=False)
    assert opened.status_code == 303
    home = app.get("/?lang=en")
    assert home.status_code == 200
    return home.text.split('name="csrf" value="')[1].split('"')[0]


def test_only_this_device_may_use_the_wallet(world: World) -> None:
    assert _app(world, client=("192.0.2.7", 1)).get("/").status_code == 403
    assert _app(world, base="http://evil.example").get("/").status_code == 403  # DNS rebinding: wrong Host
    assert _app(world).get("/").status_code == 200


def test_unlock_needs_the_password(world: World) -> None:
    app = _app(world)
    wrong = app.post("/unlock", content="password=nope", headers=FORM)
    assert wrong.status_code == 401 and "imi_wallet" not in wrong.cookies
    assert app.get("/present", follow_redirects=False).status_code == 303  # still locked
    _unlock(app)
    assert "PID" in app.get("/?lang=en").text  # the type's name as published on the ledger


def test_consent_shows_who_why_and_what_then_sends(world: World) -> None:
    app = _app(world)
    csrf = _unlock(app)
    body = world.ask().json()
    consent = app.post("/present?lang=en", content=urllib.parse.urlencode({"csrf": csrf, "uri": body["request_uri"]}),
                       headers=FORM)
    assert consent.status_code == 200
    assert "Community desk" in consent.text and "Age check" in consent.text and "Aged 18 or over" in consent.text
    assert world.result(body["id"])["state"] == "pending"  # nothing sent before agreeing
    token = consent.text.split('name="consent" value="')[1].split('"')[0]
    sent = app.post("/present/answer?lang=en", content=urllib.parse.urlencode(
        {"csrf": csrf, "consent": token, "choice": "agree"}), headers=FORM)
    assert sent.status_code == 200 and "The service received your answer" in sent.text
    assert world.result(body["id"])["valid"] is True
    history = app.get("/history?lang=en").text
    assert "Community desk" in history and "Aged 18 or over" in history
    exported = app.get("/history.json").json()["shared"]
    assert exported[0]["verifier"] == "Community desk" and exported[0]["disclosed"] == ["age_equal_or_over.18"]
    assert exported[0]["verifier_names"] == {"en": "Community desk", "zh-CN": "社区服务台"}
    # the consent cannot be used twice
    again = app.post("/present/answer", content=urllib.parse.urlencode(
        {"csrf": csrf, "consent": token, "choice": "agree"}), headers=FORM, follow_redirects=False)
    assert again.status_code == 303


def test_decline_shares_nothing(world: World) -> None:
    app = _app(world)
    csrf = _unlock(app)
    body = world.ask().json()
    consent = app.post("/present", content=urllib.parse.urlencode({"csrf": csrf, "uri": body["request_uri"]}),
                       headers=FORM)
    token = consent.text.split('name="consent" value="')[1].split('"')[0]
    app.post("/present/answer", content=urllib.parse.urlencode({"csrf": csrf, "consent": token, "choice": "decline"}),
             headers=FORM)
    assert world.result(body["id"])["reason"] == "access_denied"
    assert app.get("/history.json").json()["shared"][0]["disclosed"] == []


def test_forms_without_the_csrf_token_are_refused(world: World) -> None:
    app = _app(world)
    _unlock(app)
    body = world.ask().json()
    forged = app.post("/present", content=urllib.parse.urlencode({"csrf": "x", "uri": body["request_uri"]}),
                      headers=FORM)
    assert forged.status_code == 403


def test_a_bad_link_is_refused_with_a_reason(world: World) -> None:
    app = _app(world)
    csrf = _unlock(app)
    page = app.post("/present?lang=en", content=urllib.parse.urlencode({"csrf": csrf, "uri": "https://not.openid4vp"}),
                    headers=FORM)
    assert page.status_code == 400 and "Request refused" in page.text and "invalid_request" in page.text


def test_lock_forgets_the_wallet(world: World) -> None:
    app = _app(world)
    csrf = _unlock(app)
    app.post("/lock", content="csrf=" + csrf, headers=FORM)
    assert 'type="password"' in app.get("/").text


def test_consent_warns_when_the_one_time_copies_are_used_up(world: World) -> None:
    app = _app(world)
    csrf = _unlock(app)

    def consent_page() -> str:
        uri = world.ask().json()["request_uri"]
        return app.post("/present?lang=en", content=urllib.parse.urlencode({"csrf": csrf, "uri": uri}),
                        headers=FORM).text

    first = consent_page()
    assert "one-time copy" not in first and "PID" in first  # the type's name, not its vct
    token = first.split('name="consent" value="')[1].split('"')[0]
    app.post("/present/answer", content=urllib.parse.urlencode({"csrf": csrf, "consent": token, "choice": "agree"}),
             headers=FORM)
    assert "every one-time copy of this credential was used" in consent_page()
    assert "All copies of this batch were used" in app.get("/?lang=en").text


def test_the_history_names_the_service_in_the_pages_language(world: World) -> None:
    """Consent given on an English page; the history read in Chinese names the service by
    its registered Chinese name (and the other way round)."""
    app = _app(world)
    csrf = _unlock(app)
    for lang in ("en", "zh-CN"):
        body = world.ask().json()
        consent = app.post(f"/present?lang={lang}",
                           content=urllib.parse.urlencode({"csrf": csrf, "uri": body["request_uri"]}), headers=FORM)
        token = consent.text.split('name="consent" value="')[1].split('"')[0]
        app.post(f"/present/answer?lang={lang}", content=urllib.parse.urlencode(
            {"csrf": csrf, "consent": token, "choice": "agree"}), headers=FORM)
    chinese, english = app.get("/history?lang=zh-CN").text, app.get("/history?lang=en").text
    assert chinese.count("社区服务台") == 2 and "Community desk" not in chinese
    assert english.count("Community desk") == 2 and "社区服务台" not in english
