"""The citizen's whole visit in a real browser (headless Chromium, phone size, zh-CN):
the wallet app receives a credential from an agency's offer (made through the issuer
service's staff API, with a PIN), answers the counter page's QR request after consent,
the counter page shows only the requested answer, the wallet's history names the
registered service and the issuance; then the recovery kit and key rotation pages.
Every main screen is saved under build/screenshots/ for a person to look at."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cli._consortium import free_ports
from identity import did as didmod
from identity.fetcher import IdentityHttpFetcher
from identity.http.issuer_service import create_issuer_app
from identity.http.node_routes import ROUTERS
from identity.http.verifier_service import VerifierConfig, create_verifier_app, ledger_verify_one
from identity.http.wallet_app import create_wallet_app
from identity.issuer_agent import IssuerAgent, Register
from identity.ledger_client import NodeClient
from identity.light_client import LightClient
from identity.rules import IDENTITY_HANDLERS
from identity.wallet import KdfParams, Wallet, read_recovery_kit
from ledger.execution import DEVNET_HANDLERS
from ledger.keys import SigningKey
from node.api.app import create_app
from tests.browser import chromium_page, screenshot
from tests.serving import serve_in_thread
from tests.test_issuance_world import (
    ADMIN_TOKEN,
    CITIZEN_CLAIMS,
    LIST_ID,
    NODE_URL,
    VCT,
    setup_ledger,
)
from tests.test_node_api_support import InProcessNode

pytestmark = pytest.mark.xdist_group("browser")

STAFF_TOKEN = "counter-staff-token-for-tests"
FRESHNESS_MS = 900_000  # the in-process ledger commits only on demand: no heartbeat to keep reads fresh
KIT_PASSWORD = "family kit 2026"
DISPLAY = {VCT: {"zh-CN": "居民身份信息", "en": "Resident identity"}}


@dataclass
class Town:
    """One ledger, an agency's issuer service and a registered desk's verifier service."""

    issuer_app: Any
    verifier_app: Any
    node: NodeClient
    light: LightClient
    node_http: TestClient


def _town(issuer_url: str, verifier_url: str) -> Town:
    node = InProcessNode(handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    node.commit()
    node_http = TestClient(create_app(node, extra_routers=ROUTERS), base_url=NODE_URL, raise_server_exceptions=False)
    nc = NodeClient(NODE_URL, client=node_http)
    key, did = setup_ledger(node, nc, issuer_url)
    light = LightClient(node.genesis, IdentityHttpFetcher(NODE_URL, client=node_http), freshness_ms=FRESHNESS_MS)
    agent = IssuerAgent(did, key, nc, light, LIST_ID, Register.from_json({"ada": {"claims": CITIZEN_CLAIMS}}),
                        credential_issuer=issuer_url, display=DISPLAY)
    desk_key, desk_next = SigningKey.generate(), SigningKey.generate()
    commitment = didmod.key_commitment(desk_next.public_key.to_jwk())
    desk = didmod.derive_did(desk_key.public_key.to_jwk(), commitment)
    nc.submit(nc.build("did.create", desk, {"jwk": dict(desk_key.public_key.to_jwk()),
                                            "next_key_commitment": commitment}, desk_key))
    nc.submit(nc.build("gov.service_register", "gov", {
        "did": desk, "name": {"en": "Community desk", "zh-CN": "社区服务台"},
        "purpose": {"en": "Age check", "zh-CN": "年龄核验"},
        "queries": [{"vct": VCT, "claims": [["age_equal_or_over", "18"], ["given_name"]]}]},
        *node.consortium.trustee_keys[:2]))
    config = VerifierConfig(desk, desk_key, f"{desk}#{desk_key.key_id}", verifier_url, STAFF_TOKEN)
    verifier = create_verifier_app(config, registration=lambda: light.service(desk, _now_ms()),
                                   verify_one=ledger_verify_one(light))
    return Town(create_issuer_app(agent, admin_token=ADMIN_TOKEN), verifier, nc, light, node_http)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _staff_offer(issuer_url: str) -> tuple[str, str]:
    answer = httpx.post(issuer_url + "/v1/admin/offers", json={"subject": "ada", "vcts": [VCT], "batch": 3},
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30.0)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["offer_uri"]), str(answer.json()["tx_code"])


def test_the_wallet_app_receives_answers_and_keeps_its_keys_in_chromium(tmp_path: Path) -> None:
    issuer_port, verifier_port, wallet_port = free_ports(3)
    issuer_url, counter = f"http://127.0.0.1:{issuer_port}", f"http://127.0.0.1:{verifier_port}"
    wallet_url = f"http://127.0.0.1:{wallet_port}"
    town = _town(issuer_url, counter)
    Wallet.create(tmp_path / "w.json", "pw", kdf=KdfParams.fastest())
    http = httpx.Client(timeout=30.0)
    wallet_app = create_wallet_app(tmp_path / "w.json", light=town.light, http=http, node=town.node,
                                   kit_kdf=KdfParams.fastest())
    with serve_in_thread(town.issuer_app, issuer_port), serve_in_thread(town.verifier_app, verifier_port), \
            serve_in_thread(wallet_app, wallet_port), chromium_page(locale="zh-CN") as page:
        offer_uri, pin = _staff_offer(issuer_url)
        _unlock(page, wallet_url)
        _receive(page, offer_uri, pin)
        _answer_the_counter(page, counter, wallet_url)
        _recovery_and_rotation(page, wallet_url, tmp_path, town)
    http.close()


def _unlock(page: Any, wallet_url: str) -> None:
    page.goto(wallet_url + "/")
    page.get_by_label("钱包密码").fill("pw")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="我的证件").wait_for()
    assert "钱包里还没有证件" in page.content()


def _receive(page: Any, offer_uri: str, pin: str) -> None:
    page.get_by_role("link", name="领取证件").click()
    page.get_by_label("领取链接（openid-credential-offer://）").fill(offer_uri)
    screenshot(page, "wallet-receive-1-paste-zh")
    page.get_by_role("button", name="继续").click()
    page.get_by_role("heading", name="是否从该机构领取证件？").wait_for()
    confirm = page.locator("main").inner_text()
    assert "Civil Affairs" in confirm and "居民身份信息" in confirm and "已在账本上核对" in confirm
    page.get_by_label("领取码（工作人员告诉您的数字）").fill(pin)
    screenshot(page, "wallet-receive-2-confirm-zh")
    page.keyboard.press("Enter")  # the PIN field submits with the keyboard: the first button, Receive
    page.get_by_role("heading", name="已领取").wait_for()
    assert page.get_by_role("status").inner_text().endswith("已领取 3 份")
    screenshot(page, "wallet-receive-3-received-zh")
    page.get_by_role("link", name="我的证件").click()
    cards = page.locator("ul.cards").inner_text()
    assert "居民身份信息" in cards and "3 份中还有 3 份未用" in cards
    screenshot(page, "wallet-home-credentials-zh")


def _answer_the_counter(page: Any, counter: str, wallet_url: str) -> None:
    page.goto(counter + "/counter")
    page.get_by_label("工作人员令牌").fill(STAFF_TOKEN)
    page.get_by_role("button", name="登录").click()
    page.get_by_label("年满 18 岁").check()
    page.get_by_role("button", name="生成二维码").click()
    page.get_by_role("heading", name="请居民扫码").wait_for()
    uri = page.get_by_role("link", name="在本机钱包中打开").get_attribute("href")
    waiting = page.url

    page.goto(wallet_url + "/present")
    page.get_by_label("请求链接（openid4vp://）").fill(uri or "")
    page.get_by_role("button", name="继续").click()
    page.get_by_role("heading", name="是否同意提供以下信息？").wait_for()
    consent = page.locator("main").inner_text()
    assert "社区服务台" in consent and "年满 18 岁" in consent and "Ada" not in consent
    assert "已用完" not in consent and "居民身份信息" in consent  # a fresh one-time copy: no reuse notice
    screenshot(page, "wallet-present-consent-zh")
    page.get_by_role("button", name="同意并发送").click()
    page.get_by_role("heading", name="已发送").wait_for()
    page.get_by_role("link", name="提供记录").click()
    shared = page.locator("table.shared").inner_text()
    assert "社区服务台" in shared and "年满 18 岁" in shared
    received = page.locator("table.received").inner_text()
    assert "Civil Affairs" in received and "居民身份信息" in received
    screenshot(page, "wallet-history-zh")
    page.get_by_role("link", name="English").click()
    page.get_by_role("heading", name="What I shared").wait_for()
    screenshot(page, "wallet-history-en")
    page.goto(wallet_url + "/?lang=zh-CN")
    assert "3 份中还有 2 份未用" in page.locator("ul.cards").inner_text()

    page.goto(waiting)
    page.get_by_role("status").wait_for(timeout=20_000)
    assert page.get_by_role("status").inner_text().endswith("核验通过")
    answers = page.locator("dl.answers").inner_text()
    assert re.search(r"年满 18 岁\s+是", answers)
    assert "Ada" not in page.content() and "1990" not in page.content() and "London" not in page.content()
    screenshot(page, "counter-verdict-after-wallet-app-zh")


def _recovery_and_rotation(page: Any, wallet_url: str, tmp_path: Path, town: Town) -> None:
    page.goto(wallet_url + "/recovery")
    assert "恢复包是一个加密文件" in page.locator("main").inner_text()
    screenshot(page, "wallet-recovery-1-explain-zh")
    page.get_by_label("恢复包密码（至少 8 个字符）").fill(KIT_PASSWORD)
    page.get_by_label("再次输入恢复包密码").fill(KIT_PASSWORD)
    page.get_by_role("button", name="生成恢复包").click()
    page.get_by_role("heading", name="请保存恢复包").wait_for()
    screenshot(page, "wallet-recovery-2-save-zh")
    kit = _download(page, tmp_path / "kit.json")
    page.get_by_role("button", name="已保存，创建身份").click()
    page.get_by_role("heading", name="数字身份已创建").wait_for()
    screenshot(page, "wallet-recovery-3-did-created-zh")
    (did,) = Wallet.open(tmp_path / "w.json", "pw").dids()
    assert did in page.locator("main").inner_text()
    next_key = read_recovery_kit(kit, KIT_PASSWORD)

    page.goto(wallet_url + "/rotate")
    page.get_by_label("恢复包文件").set_input_files(str(kit))
    page.get_by_label("恢复包的密码").fill(KIT_PASSWORD)
    screenshot(page, "wallet-rotate-1-upload-zh")
    page.get_by_role("button", name="继续").click()
    page.get_by_role("heading", name="请保存恢复包").wait_for()
    new_kit = _download(page, tmp_path / "kit-2.json")
    page.get_by_role("button", name="已保存，更换钥匙").click()
    page.get_by_role("heading", name="钥匙已更换").wait_for()
    screenshot(page, "wallet-rotate-2-done-zh")
    assert Wallet.open(tmp_path / "w.json", "pw").dids()[did] == next_key.key_id
    metadata = town.light.resolve_did(did, _now_ms())["didDocumentMetadata"]
    assert metadata["versionId"] == "2"
    assert metadata["nextKeyCommitment"] == didmod.key_commitment(
        read_recovery_kit(new_kit, KIT_PASSWORD).public_key.to_jwk()).hex()
    page.get_by_role("link", name="English").click()  # from a POST's page: to the recovery page, not a 405
    page.get_by_role("heading", name="Recovery kit").wait_for()
    assert did in page.locator("main").inner_text() and next_key.key_id in page.locator("main").inner_text()
    screenshot(page, "wallet-recovery-4-after-rotation-en")
    page.goto(wallet_url + "/")
    screenshot(page, "wallet-home-credentials-en")


def _download(page: Any, target: Path) -> Path:
    with page.expect_download() as info:
        page.get_by_role("link", name="下载恢复包").click()
    info.value.save_as(str(target))
    return target
