"""The wallet app's receive, recovery kit and key rotation pages over HTTP, against a real
in-process ledger and issuer service: consent before anything is signed, the PIN, the kit
saved before the ledger changes, friendly refusals with a stable reason, never a 500."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from identity.http.wallet_app import create_wallet_app
from identity.wallet import KdfParams, Wallet, read_recovery_kit
from tests.test_issuance_world import ADMIN_TOKEN, VCT, World, build_world

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KIT_PASSWORD = "kit password 1"


@pytest.fixture(scope="module")
def world() -> World:
    return build_world({f"r{i}": {"claims": {"given_name": f"R{i}", "birthdate": "1950-05-06"}} for i in range(6)})


def _app(world: World, path: Path) -> TestClient:
    if not path.exists():
        world.wallet(path)
    app = create_wallet_app(path, light=world.light_client(), http=world.route(), node=world.node_client(),
                            kit_kdf=KdfParams.fastest(), allow_http=True)
    client = TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000),
                        raise_server_exceptions=False)
    assert client.post("/unlock", content="password=pw", headers=FORM, follow_redirects=False).status_code == 303
    return client


def _csrf(app: TestClient) -> str:
    return app.get("/?lang=en").text.split('name="csrf" value="')[1].split('"')[0]


def _post(app: TestClient, url: str, **fields: str) -> Any:
    return app.post(url, content=urllib.parse.urlencode(fields), headers=FORM)


def _consent(html: str) -> str:
    return html.split('name="consent" value="')[1].split('"')[0]


def _offer(world: World, subject: str, batch: int = 3) -> dict[str, str]:
    answer = world.issuer_http.post("/v1/admin/offers", json={"subject": subject, "vcts": [VCT], "batch": batch},
                                    headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_receive_shows_the_checked_issuer_then_stores_the_batch_with_display_names(world: World,
                                                                                  tmp_path: Path) -> None:
    app = _app(world, tmp_path / "w.json")
    csrf = _csrf(app)
    offer = _offer(world, "r0")
    confirm = _post(app, "/receive?lang=en", csrf=csrf, uri=offer["offer_uri"])
    assert confirm.status_code == 200, confirm.text
    text = confirm.text
    assert "Civil Affairs" in text and world.agency_did in text and "PID" in text and 'name="tx_code"' in text
    assert Wallet.open(tmp_path / "w.json", "pw").credentials() == []  # nothing before consent
    received = _post(app, "/receive/accept?lang=en", csrf=csrf, consent=_consent(text), choice="agree",
                     tx_code=offer["tx_code"])
    assert received.status_code == 200 and "3 copies received" in received.text and "From Civil Affairs" in received.text
    saved = Wallet.open(tmp_path / "w.json", "pw")
    assert len(saved.credentials()) == 3 and saved.display_names("en") == {VCT: "PID"}
    assert "One-time copies: 3 of 3 unused" in app.get("/?lang=en").text
    history = app.get("/history?lang=en").text
    assert "What I received" in history and "Civil Affairs" in history
    exported = app.get("/history.json").json()["received"]
    assert sorted(exported[0]["credentials"]) == sorted(c.id for c in saved.credentials())


def test_a_wrong_pin_gets_a_friendly_refusal_and_stores_nothing(world: World, tmp_path: Path) -> None:
    app = _app(world, tmp_path / "w.json")
    csrf = _csrf(app)
    offer = _offer(world, "r1")
    confirm = _post(app, "/receive", csrf=csrf, uri=offer["offer_uri"])
    wrong = "000000" if offer["tx_code"] != "000000" else "111111"
    refused = _post(app, "/receive/accept?lang=en", csrf=csrf, consent=_consent(confirm.text),
                    choice="agree", tx_code=wrong)
    assert refused.status_code == 400 and "invalid_grant" in refused.text
    assert "Nothing was changed" in refused.text
    saved = Wallet.open(tmp_path / "w.json", "pw")
    assert saved.credentials() == [] and saved.key_ids() == []  # no key made for the proofs is kept
    assert app.get("/?lang=en").status_code == 200


@pytest.mark.parametrize("uri", ["https://not.an.offer", "openid-credential-offer://?credential_offer=%7B%7D"])
def test_a_bad_offer_link_is_refused_with_a_reason(world: World, tmp_path: Path, uri: str) -> None:
    app = _app(world, tmp_path / "w.json")
    page = _post(app, "/receive?lang=en", csrf=_csrf(app), uri=uri)
    assert page.status_code == 400 and "bad-offer" in page.text


def test_the_receive_forms_need_the_csrf_token(world: World, tmp_path: Path) -> None:
    app = _app(world, tmp_path / "w.json")
    assert _post(app, "/receive", csrf="forged", uri=_offer(world, "r2")["offer_uri"]).status_code == 403


def test_recovery_kit_is_saved_before_the_did_exists_then_rotation_uses_it(world: World, tmp_path: Path) -> None:
    app = _app(world, tmp_path / "w.json")
    csrf = _csrf(app)
    assert "no digital ID yet" in app.get("/recovery?lang=en").text
    mismatch = _post(app, "/recovery/new", csrf=csrf, kit_password=KIT_PASSWORD, kit_password2="other one")
    assert mismatch.status_code == 400 and "password-mismatch" in mismatch.text
    ready = _post(app, "/recovery/new?lang=en", csrf=csrf, kit_password=KIT_PASSWORD, kit_password2=KIT_PASSWORD)
    consent = _consent(ready.text)
    early = _post(app, "/recovery/confirm?lang=en", csrf=csrf, consent=consent)
    assert early.status_code == 409 and "download the recovery kit first" in early.text
    assert Wallet.open(tmp_path / "w.json", "pw").dids() == {}  # no DID without a saved kit
    kit = app.get(f"/recovery/kit?k={consent}")
    assert kit.status_code == 200 and "attachment" in kit.headers["content-disposition"]
    (tmp_path / "kit.json").write_bytes(kit.content)
    next_key = read_recovery_kit(tmp_path / "kit.json", KIT_PASSWORD)
    done = _post(app, "/recovery/confirm?lang=en", csrf=csrf, consent=consent)
    assert done.status_code == 200 and "Your digital ID is created" in done.text
    (did,) = Wallet.open(tmp_path / "w.json", "pw").dids()
    assert did in done.text
    assert "change the key" in app.get("/recovery?lang=en").text.lower()

    # rotation: upload the kit (multipart), save the new kit, rotate
    wrong = app.post("/rotate?lang=en", data={"csrf": csrf, "kit_password": "not it"},
                     files={"kit": ("kit.json", kit.content, "application/json")})
    assert wrong.status_code == 400 and "wrong-password" in wrong.text
    checked = app.post("/rotate?lang=en", data={"csrf": csrf, "kit_password": KIT_PASSWORD},
                       files={"kit": ("kit.json", kit.content, "application/json")})
    assert checked.status_code == 200, checked.text
    consent = _consent(checked.text)
    new_kit = app.get(f"/recovery/kit?k={consent}")
    rotated = _post(app, "/recovery/confirm?lang=en", csrf=csrf, consent=consent)
    assert rotated.status_code == 200 and "The key is changed" in rotated.text
    assert Wallet.open(tmp_path / "w.json", "pw").dids()[did] == next_key.key_id
    document = world.light_client().resolve_did(did, int(time.time() * 1000))
    assert document["didDocumentMetadata"]["versionId"] == "2"
    # the old kit is used up: the wallet says so before touching the ledger
    again = app.post("/rotate?lang=en", data={"csrf": csrf, "kit_password": KIT_PASSWORD},
                     files={"kit": ("kit.json", kit.content, "application/json")})
    assert again.status_code == 400 and "kit-not-for-did" in again.text
    (tmp_path / "new.json").write_bytes(new_kit.content)
    assert read_recovery_kit(tmp_path / "new.json", KIT_PASSWORD).key_id != next_key.key_id


def test_the_rotation_upload_needs_the_csrf_token(world: World, tmp_path: Path) -> None:
    app = _app(world, tmp_path / "w.json")
    forged = app.post("/rotate", data={"csrf": "forged", "kit_password": "x"},
                      files={"kit": ("kit.json", b"{}", "application/json")})
    assert forged.status_code == 403


@pytest.mark.parametrize(("kit", "reason"), [(b"", "no-kit"), (b"not json", "bad-wallet"),
                                             (b'{"format": "imi-wallet", "version": 1}', "bad-wallet")])
def test_a_bad_kit_file_gets_a_reason_never_a_500(world: World, tmp_path: Path, kit: bytes, reason: str) -> None:
    app = _app(world, tmp_path / "w.json")
    csrf = _csrf(app)
    ready = _post(app, "/recovery/new", csrf=csrf, kit_password=KIT_PASSWORD, kit_password2=KIT_PASSWORD)
    consent = _consent(ready.text)
    app.get(f"/recovery/kit?k={consent}")
    assert _post(app, "/recovery/confirm", csrf=csrf, consent=consent).status_code == 200
    page = app.post("/rotate", data={"csrf": csrf, "kit_password": KIT_PASSWORD},
                    files={"kit": ("kit.json", kit, "application/json")})
    assert page.status_code == 400 and reason in page.text
    again = _post(app, "/recovery/new", csrf=csrf, kit_password=KIT_PASSWORD, kit_password2=KIT_PASSWORD)
    assert again.status_code == 409 and "did-exists" in again.text
    assert _post(app, "/recovery/confirm", csrf=csrf, consent="unknown").status_code == 200  # back to /recovery
    no_boundary = app.post("/rotate", content=b"x", headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status_code in (400, 403)
