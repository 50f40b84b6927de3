"""The counter page in a real browser (headless Chromium): sign in, ask, show the QR code,
see only the answer — with the keyboard, at phone size, in zh-CN and en."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli._consortium import free_ports
from identity import oid4vp
from tests.browser import chromium_page, screenshot
from tests.serving import serve_in_thread
from tests.test_verifier_service import TOKEN, make_world

pytestmark = pytest.mark.xdist_group("browser")


def test_counter_page_end_to_end_in_chromium(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    world = make_world(tmp_path, f"http://127.0.0.1:{port}")
    with serve_in_thread(world.app, port), chromium_page(locale="zh-CN") as page:
        page.goto(f"http://127.0.0.1:{port}/counter")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        screenshot(page, "counter-1-sign-in-zh")
        page.get_by_label("工作人员令牌").fill(TOKEN)
        page.keyboard.press("Enter")  # the keyboard alone signs in
        page.get_by_role("heading", name="提出问题").wait_for()
        page.get_by_role("link", name="English").click()
        page.get_by_role("heading", name="Ask a question").wait_for()
        box = page.get_by_label("Aged 18 or over")
        box.focus()
        page.keyboard.press("Space")
        assert box.is_checked()
        screenshot(page, "counter-2-ask-en")
        page.get_by_role("button", name="Show QR code").click()
        page.get_by_role("heading", name="Ask the resident to scan").wait_for()
        assert page.locator("figure.qr svg title").text_content() == "openid4vp"
        screenshot(page, "counter-3-qr-en")
        uri = page.get_by_role("link", name="Open in the wallet on this device").get_attribute("href")
        assert uri is not None and uri.startswith("openid4vp://")
        request = world.wallet_opens(uri)
        token = oid4vp.wallet_answer(world.wallet, request, now=world.now())
        assert world.post({"vp_token": json.dumps(token), "state": request.state}).status_code == 200
        page.get_by_role("status").wait_for(timeout=10_000)  # the waiting page refreshes itself
        assert page.get_by_role("status").inner_text().endswith("Verified")
        answers = page.locator("dl.answers").inner_text()
        assert re.search(r"Aged 18 or over\s+Yes", answers)
        assert "Alice" not in page.content() and "1990" not in page.content()
        screenshot(page, "counter-4-verdict-en")
        page.set_viewport_size({"width": 1280, "height": 800})
        screenshot(page, "counter-4-verdict-en-wide")


def test_wallet_app_answers_the_counters_question_after_consent(tmp_path: Path) -> None:
    import httpx

    from identity.http.wallet_app import create_wallet_app

    counter_port, wallet_port = free_ports(2)
    world = make_world(tmp_path, f"http://127.0.0.1:{counter_port}")
    world.wallet.save()
    http = httpx.Client(timeout=10.0)
    wallet_app = create_wallet_app(world.wallet.path, light=world.light, http=http, clock_ms=world.scene.clock)
    with serve_in_thread(world.app, counter_port), serve_in_thread(wallet_app, wallet_port), \
            chromium_page(locale="zh-CN") as page:
        counter = f"http://127.0.0.1:{counter_port}"
        page.goto(counter + "/counter")
        page.get_by_label("工作人员令牌").fill(TOKEN)
        page.get_by_role("button", name="登录").click()
        page.get_by_label("年满 18 岁").check()
        page.get_by_role("button", name="生成二维码").click()
        uri = page.get_by_role("link", name="在本机钱包中打开").get_attribute("href")
        waiting = page.url

        page.goto(f"http://127.0.0.1:{wallet_port}/")
        screenshot(page, "wallet-1-unlock-zh")
        page.get_by_label("钱包密码").fill("pw")
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="我的证件").wait_for()
        assert "PID" in page.content()
        screenshot(page, "wallet-2-credentials-zh")
        page.get_by_role("link", name="回应请求").click()
        page.get_by_label("请求链接（openid4vp://）").fill(uri or "")
        screenshot(page, "wallet-3-paste-zh")
        page.get_by_role("button", name="继续").click()
        page.get_by_role("heading", name="是否同意提供以下信息？").wait_for()
        consent = page.locator("main").inner_text()
        assert "社区服务台" in consent and "年龄核验" in consent and "年满 18 岁" in consent
        assert "given" not in consent
        screenshot(page, "wallet-4-consent-zh")
        page.get_by_role("button", name="同意并发送").click()
        page.get_by_role("heading", name="已发送").wait_for()
        screenshot(page, "wallet-5-sent-zh")
        page.get_by_role("link", name="提供记录").click()
        history = page.locator("table").inner_text()
        assert "社区服务台" in history and "年满 18 岁" in history
        screenshot(page, "wallet-6-history-zh")

        page.goto(waiting)
        page.get_by_role("status").wait_for()
        assert page.get_by_role("status").inner_text().endswith("核验通过")
        assert re.search(r"年满 18 岁\s+是", page.locator("dl.answers").inner_text())
        screenshot(page, "counter-5-verdict-zh")
    http.close()
