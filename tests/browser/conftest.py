"""Browser fixtures: Debian's headless Chromium driven by Playwright (sync API).

The hub itself comes from `live_hub` in tests/conftest.py. Playwright's own browser
downloads are never used: the machine's `/usr/bin/chromium` is (apt-get install chromium).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from hub.identity_tokens import issue_identity_token
from tests.chat_client import ChatClient
from tests.conftest import IDENTITY_SECRET, REPO, LiveHub

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


# -- the agent console (test_console.py) ------------------------------------------------------

T = TypeVar("T")


class Customer:
    """A web-chat customer (tests/chat_client.py) driven from a synchronous browser test.

    Playwright's sync API owns this thread's event loop, so the customer's python-socketio
    client lives on an event loop of its own, in a daemon thread.
    """

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client = self._run(self._connect(base_url, token))

    @staticmethod
    async def _connect(base_url: str, token: str | None) -> ChatClient:
        return await ChatClient(base_url, token=token).connect()

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def ask(self, text: str) -> list[dict[str, Any]]:
        """Send `text` while the bot has the conversation; returns the bot's whole turn."""
        return self._run(self.client.ask(text))

    def say(self, text: str) -> None:
        """Send `text` (to the agent, once a person has the conversation)."""
        ack = self._run(self.client.send(text))
        assert "id" in ack, ack

    def typing(self, typing: bool) -> None:
        self._run(self.client.sio.emit("typing", {"typing": typing}, namespace="/chat"))

    def received(self, author: str) -> list[str]:
        """Texts of the messages from `author` the customer has been sent so far."""
        return self._run(self._received(author))

    async def _received(self, author: str) -> list[str]:
        return [m["text"] for m in self.client.messages if m["author"] == author]

    def wait_for_text(self, author: str, text: str, timeout: float = 30) -> None:
        def arrived() -> bool:
            return any(m["author"] == author and m["text"] == text for m in self.client.messages)

        self._run(self.client.wait_for(arrived, timeout), timeout + 5)

    def saw_typing(self, author: str) -> bool:
        return self._run(self._saw_typing(author))

    async def _saw_typing(self, author: str) -> bool:
        return any(t["author"] == author and t["typing"] for t in self.client.typing)

    def history(self) -> list[dict[str, Any]]:
        return self._run(self.client.history())

    def close(self) -> None:
        try:
            self._run(self.client.close(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


@pytest.fixture
def customers(live_hub: LiveHub) -> Iterator[Callable[[str | None], Customer]]:
    """Connect web-chat customers: `customers("C1001")` is that demo customer, verified."""
    connected: list[Customer] = []

    def connect(external_id: str | None) -> Customer:
        token = issue_identity_token(IDENTITY_SECRET, external_id) if external_id else None
        customer = Customer(live_hub.base_url, token)
        connected.append(customer)
        return customer

    yield connect
    for customer in connected:
        customer.close()


DEMO_STAFF_PASSWORDS = {
    record["username"]: record["password"]
    for record in (
        json.loads(line)
        for line in (REPO / "hub" / "demo_data" / "agents.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    )
}


@pytest.fixture
def staff_console(browser: Browser, live_hub: LiveHub) -> Iterator[Callable[[str], Page]]:
    """Open the console logged in as a demo staff member, each in a browser profile of its own.

    On teardown each goes offline first, so no later test's customer is offered to an agent
    whose page has closed (the hub would keep them available until their heartbeat lapses).
    """
    opened: list[tuple[BrowserContext, Page, list[str]]] = []

    def open_console(username: str) -> Page:
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        opened.append((context, page, errors))
        page.goto(f"{live_hub.base_url}/console")
        page.get_by_label("用户名").fill(username)
        page.get_by_label("密码").fill(DEMO_STAFF_PASSWORDS[username])
        page.get_by_role("button", name="登录").click()
        expect(page.get_by_role("status").filter(has_text="已连接")).to_be_visible()
        return page

    yield open_console
    for context, page, errors in opened:
        page.keyboard.press("Escape")  # a dialog a failed test left open
        offline = page.get_by_role("radio", name="离线")
        if offline.count() and offline.get_attribute("aria-checked") != "true":
            offline.click()
            expect(offline).to_have_attribute("aria-checked", "true")
        context.close()
        assert not errors, f"uncaught errors in the console: {errors}"
