"""One headless Chromium for the session (Debian's, driven by Playwright), with a fake
screen to share: getDisplayMedia returns a test pattern and a tone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[object]:
    """Open pages in separate contexts (separate people); all are closed afterwards.

    The tests' own probes (wait_for_function, evaluate) are eval'd strings, which the
    page's Content-Security-Policy forbids; ``enforce_csp=True`` keeps the policy for
    tests that check the page under it.
    """
    contexts: list[BrowserContext] = []

    def open_page(enforce_csp: bool = False) -> Page:
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, bypass_csp=not enforce_csp
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots(artifacts: Path) -> Path:
    path = artifacts / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
