"""Headless Chromium for page tests: Debian's ``chromium`` driven by Playwright, by its path.

``chromium_page()`` yields a Playwright page at phone size. Where no browser is installed
the test is skipped — except with ``CI=true``, where a missing browser fails the run
(``make test`` installs Debian's chromium first). Screenshots go to ``build/screenshots``
(ignored by git) so a person can look at every main screen after a run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "screenshots"
PHONE = {"width": 390, "height": 844}
# The flags of a closed network: no background traffic, no sandbox as root, no GPU.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    return os.environ.get("IMI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium_page(**context: Any) -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium on this machine: `make test` installs Debian's chromium (apt-get)")
        pytest.skip("no chromium (apt-get install chromium); with CI=true this fails")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("playwright is not installed (the dev extra of pyproject)")
        pytest.skip("playwright is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=FLAGS)
        try:
            page = browser.new_page(viewport=PHONE, **context)
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


__all__ = ["PHONE", "SCREENSHOTS", "chromium_page", "screenshot"]
