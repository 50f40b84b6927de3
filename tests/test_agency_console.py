"""The agency console (identity/http/agency_console.py): staff sign in with the token, see the
issuer's health, enrol a subject, make an offer (QR code and PIN), see what was issued per
subject and suspend / revoke by subject and credential — over HTTP, and in headless Chromium."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from identity.holder import register_did
from identity.http.agency_console import WORDS
from identity.http.i18n import LANGUAGES
from identity.oid4vci_client import receive
from identity.wallet import KdfParams, Wallet
from ledger.keys import SigningKey
from tests.browser import chromium_page, screenshot
from tests.serving import serve_in_thread
from tests.test_issuance_world import ADMIN_TOKEN, LIST_ID, World, build_world

SUBJECTS = {f"file-{i}": {"claims": {"given_name": f"P{i}", "birthdate": "1980-05-06"}} for i in range(6)}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(SUBJECTS)


def signed_in(world: World) -> TestClient:
    http = TestClient(world.issuer_http.app, base_url="http://issuer.test", raise_server_exceptions=False)
    assert http.post("/console/login", data={"token": ADMIN_TOKEN}, follow_redirects=False).status_code == 303
    return http


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def receive_offer(world: World, page: str, tmp_path: Path, name: str) -> Wallet:
    uri = re.search(r'href="(openid-credential-offer://[^"]+)"', page)
    pin = re.search(r'id="pin" class="pin">(\d+)<', page)
    assert uri is not None and pin is not None
    wallet = Wallet.create(tmp_path / name, "pw", kdf=KdfParams.fastest())
    receive(wallet, uri.group(1).replace("&amp;", "&"), http=world.route(), ledger=world.light_client(),
            now=int(time.time()), tx_code=pin.group(1), allow_http=True)
    return wallet


def test_both_languages_have_every_console_word() -> None:
    assert set(WORDS) == set(LANGUAGES) and set(WORDS["zh-CN"]) == set(WORDS["en"])


def test_the_console_needs_the_staff_token(world: World) -> None:
    http = TestClient(world.issuer_http.app, base_url="http://issuer.test", raise_server_exceptions=False)
    login = http.get("/console?lang=en")
    assert login.status_code == 200 and "Staff token" in login.text and "file-0" not in login.text
    assert http.post("/console/login", data={"token": "wrong-token-123"}).status_code == 401
    assert http.get("/console/subjects/file-0", follow_redirects=False).status_code == 303
    assert http.post("/console/subjects/file-0/offer", data={"vct": "x"}, follow_redirects=False).status_code == 303
    assert "default-src 'none'" in login.headers["content-security-policy"]


def test_offer_issue_and_revoke_by_subject(world: World, tmp_path: Path) -> None:
    http = signed_in(world)
    home = http.get("/console?lang=en")
    assert "reachable" in home.text and "file-1" in home.text
    page = http.get("/console/subjects/file-1").text
    assert "Not enrolled" in page
    # no CSRF token: refused
    assert http.post("/console/subjects/file-1/offer", data={"vct": "urn:imi:pid:1"}).status_code == 403
    offer = http.post("/console/subjects/file-1/offer", data={"csrf": csrf(page), "vct": "urn:imi:pid:1",
                                                              "batch": "1", "pin": "on"})
    assert offer.status_code == 200 and "<svg" in offer.text and "openid-credential-offer" in offer.text
    receive_offer(world, offer.text, tmp_path, "w1")
    page = http.get("/console/subjects/file-1").text
    assert "Enrolled" in page and "Valid" in page
    (record,) = world.agent.records.for_subject("file-1")
    ref = str(record["anchor"])[:12]
    assert ref in page and f">{record['idx']}<" not in page  # a reference, never the status index
    done = http.post("/console/subjects/file-1/status", data={"csrf": csrf(page), "ref": ref, "change": "revoke"},
                     follow_redirects=True)
    assert done.status_code == 200 and "Revoked" in done.text
    assert world.light_client().status(LIST_ID, int(record["idx"]), int(time.time()) * 1000) == 1
    bad = http.post("/console/subjects/file-1/status", data={"csrf": csrf(page), "ref": "0" * 12,
                                                             "change": "suspend"})
    assert bad.status_code == 400 and "unknown-credential" in bad.text


def test_enrol_a_holder_did_from_the_console(world: World) -> None:
    did, _ = register_did(world.node_client(), SigningKey.generate())
    http = signed_in(world)
    page = http.get("/console/subjects/file-2?lang=en").text
    done = http.post("/console/subjects/file-2/enrol", data={"csrf": csrf(page), "did": did})
    assert done.status_code == 200 and did in done.text and "Enrolled" in done.text
    refused = http.post("/console/subjects/file-3/enrol", data={"csrf": csrf(page), "did": "did:imi:nope"})
    assert refused.status_code == 400 and "holder-did-unknown" in refused.text


@pytest.mark.xdist_group("browser")
def test_the_console_in_chromium(world: World, tmp_path: Path) -> None:
    from cli._consortium import free_ports

    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    with serve_in_thread(world.issuer_http.app, port), chromium_page(locale="zh-CN") as page:
        page.goto(base + "/console")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        page.get_by_label("工作人员令牌").fill(ADMIN_TOKEN)
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="签发机构工作台").wait_for()
        screenshot(page, "console-1-home-zh")
        page.get_by_role("link", name="English").click()
        page.get_by_role("heading", name="Agency console").wait_for()
        page.get_by_role("link", name="file-4").click()
        page.get_by_role("heading", name="file-4").wait_for()
        assert "Not enrolled" in page.get_by_role("status").inner_text()
        page.get_by_role("button", name="Show QR code").click()
        page.get_by_role("heading", name="Ask the holder to scan").wait_for()
        assert page.locator("figure.qr svg title").text_content() == "openid-credential-offer"
        pin = page.locator("#pin").inner_text()
        assert re.fullmatch(r"\d{6}", pin)
        screenshot(page, "console-2-offer-en")
        html: Any = page.content()
        receive_offer(world, html, tmp_path, "w2")  # the citizen scans and types the PIN: enrolled
        page.get_by_role("link", name="Back").click()
        assert "Enrolled" in page.get_by_role("status").inner_text()
        (record,) = world.agent.records.for_subject("file-4")
        ref = str(record["anchor"])[:12]
        page.get_by_role("button", name=f"Revoke {ref}").click()
        page.get_by_role("cell", name="Revoked").wait_for()
        screenshot(page, "console-3-revoked-en")
        assert world.light_client().status(LIST_ID, int(record["idx"]), int(time.time()) * 1000) == 1
