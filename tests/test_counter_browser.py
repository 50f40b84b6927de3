"""The counter page in a real browser (headless Chromium): sign in, ask, show the QR code,
see only the answer — with the keyboard, at phone size, in zh-CN and en."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli.genesis import free_ports
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
