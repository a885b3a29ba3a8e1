"""Browser fixtures: Debian's headless Chromium driven by Playwright (sync API).

The hub itself comes from `live_hub` in tests/conftest.py. Playwright's own browser
downloads are never used: the machine's `/usr/bin/chromium` is (apt-get install chromium).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous: the first answers of a freshly started hub include model warm-up.
EXPECT_TIMEOUT_MS = 30_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="module")
def playwright(live_hub: object) -> Iterator[Playwright]:
    """Playwright's sync API, started after the hub and stopped after the module.

    The sync API keeps its own asyncio loop marked as running on this thread until it
    stops, and while it is, pytest-asyncio can run nothing: depending on `live_hub`
    sets the hub's async fixtures up first, and module scope lets the async tests of
    other modules run after this one.
    """
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (never `playwright install`)")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def locale() -> str:
    """The visitor's browser language; override in a test module or with parametrize."""
    return "zh-CN"


@pytest.fixture
def context(browser: Browser, locale: str) -> Iterator[BrowserContext]:
    """A fresh browser profile per test: its own localStorage, so its own visitor."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page that fails the test on any uncaught script error (the widget's or the demo's)."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert not errors, f"uncaught errors in the page: {errors}"
