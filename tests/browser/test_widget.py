"""The web-chat widget on the demo bank page, in real Chromium against the real hub."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pytest
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

pytestmark = pytest.mark.browser


class LiveHub(Protocol):
    """What these tests need of the `live_hub` fixture: a hub serving the demo page."""

    base_url: str


# Socket.IO frames on the /chat namespace: an event that wants an ack, and an ack.
EMIT_WITH_ACK = re.compile(r"^42/chat,(\d+)\[")
ACK = re.compile(r"^43/chat,(\d+)\[")

LOST_CARD = "信用卡丢了怎么挂失"


# -- what a visitor does -----------------------------------------------------------------


def open_chat(page: Page, hub: LiveHub, launcher_name: str = "打开在线客服") -> Locator:
    """Load the demo bank page and open the chat; returns the chat panel."""
    page.goto(f"{hub.base_url}/")
    page.get_by_role("button", name=launcher_name).click()
    panel = page.get_by_role("dialog")
    expect(panel).to_be_visible()
    return panel


def send(panel: Locator, text: str) -> None:
    panel.get_by_role("textbox").fill(text)
    panel.get_by_role("textbox").press("Enter")


def transcript(panel: Locator) -> Locator:
    return panel.get_by_role("log")


def said_by_customer(panel: Locator, text: str) -> Locator:
    """The customer's message(s) with exactly this text, bubble plus status line."""
    return (
        transcript(panel)
        .locator("li.sh-msg--customer")
        .filter(has=panel.page.get_by_text(text, exact=True))
    )


def reply_to(panel: Locator, text: str) -> Locator:
    """Bot messages that came after the customer's message `text`."""
    return transcript(panel).locator(
        f"li.sh-msg--customer:has-text({json.dumps(text, ensure_ascii=False)}) ~ li.sh-msg--bot"
    )


def cited_answers(panel: Locator) -> Locator:
    return transcript(panel).locator("li.sh-msg--bot").filter(has_text="来源：")


@dataclass
class SocketGate:
    """Sits on every WebSocket the page opens, between the widget and the hub.

    `cut()` drops the live connection; `blocked` refuses new ones (an outage);
    `lose_ack_of` forwards a chat message to the hub but loses the hub's ack by cutting
    the connection the moment it arrives.
    """

    blocked: bool = False
    lose_ack_of: str | None = None
    connections: int = 0
    refused: int = 0
    acks_lost: int = 0
    live: list[tuple[WebSocketRoute, WebSocketRoute]] = field(default_factory=list)

    def install(self, page: Page) -> None:
        page.route_web_socket(re.compile(r"/socket\.io/"), self._route)

    def cut(self) -> None:
        while self.live:
            page_side, hub_side = self.live.pop()
            page_side.close()
            hub_side.close()

    def _route(self, page_side: WebSocketRoute) -> None:
        if self.blocked:
            self.refused += 1
            page_side.close()
            return
        hub_side = page_side.connect_to_server()
        self.connections += 1
        self.live.append((page_side, hub_side))
        doomed_acks: set[str] = set()

        def from_page(frame: str | bytes) -> None:
            if isinstance(frame, str) and self.lose_ack_of and self.lose_ack_of in frame:
                match = EMIT_WITH_ACK.match(frame)
                if match:
                    doomed_acks.add(match.group(1))
            hub_side.send(frame)

        def from_hub(frame: str | bytes) -> None:
            match = ACK.match(frame) if isinstance(frame, str) else None
            if match and match.group(1) in doomed_acks:
                self.lose_ack_of = None
                self.acks_lost += 1
                self.cut()
                return
            page_side.send(frame)

        page_side.on_message(from_page)
        hub_side.on_message(from_hub)


def wait_until(page: Page, condition: str, predicate: Callable[[], bool]) -> None:
    """Let Playwright dispatch route handlers until `predicate()` holds (generous limit)."""
    deadline = time.monotonic() + 30
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {condition}")
        page.wait_for_timeout(100)


# -- tests --------------------------------------------------------------------------------


def test_question_gets_an_answer_citing_its_source(page: Page, live_hub: LiveHub) -> None:
    panel = open_chat(page, live_hub)
    send(panel, LOST_CARD)

    expect(said_by_customer(panel, LOST_CARD)).to_contain_text("已发送")
    answer = cited_answers(panel).last
    expect(answer).to_be_visible()
    expect(answer.locator("cite").first).to_contain_text("挂失")


def test_conversation_is_still_there_after_a_reload(page: Page, live_hub: LiveHub) -> None:
    panel = open_chat(page, live_hub)
    send(panel, LOST_CARD)
    expect(cited_answers(panel)).to_have_count(1)
    answer_text = cited_answers(panel).locator(".sh-msg__bubble").inner_text()

    page.reload()
    page.get_by_role("button", name="打开在线客服").click()

    expect(cited_answers(panel)).to_have_count(1)
    expect(cited_answers(panel).locator(".sh-msg__bubble")).to_have_text(answer_text)
    expect(said_by_customer(panel, LOST_CARD)).to_have_count(1)


def test_typing_indicator_shows_while_the_bot_works(page: Page, live_hub: LiveHub) -> None:
    panel = open_chat(page, live_hub)
    # Record every time the dots are un-hidden, however briefly.
    page.evaluate(
        """() => {
          window.__typingShown = false;
          const widget = document.querySelector('servicehub-webchat').shadowRoot;
          new MutationObserver((records) => {
            if (records.some((r) => r.oldValue !== null)) window.__typingShown = true;
          }).observe(widget.querySelector('.sh-typing'),
                     { attributes: true, attributeFilter: ['hidden'], attributeOldValue: true });
        }"""
    )
    send(panel, "信用卡年费怎么减免")

    expect(transcript(panel).locator("li.sh-msg--bot")).to_have_count(1)
    assert page.evaluate("window.__typingShown") is True
    expect(panel.locator(".sh-typing")).to_be_hidden()


def test_chat_text_is_shown_as_text_never_run_as_html(page: Page, live_hub: LiveHub) -> None:
    image = "<img src=x onerror=window.__xss=1>"
    script = "<script>window.__xss=1</script>"
    panel = open_chat(page, live_hub)
    send(panel, image)
    expect(said_by_customer(panel, image)).to_contain_text("已发送")
    send(panel, script)
    expect(said_by_customer(panel, script)).to_contain_text("已发送")

    for _ in range(2):  # as sent, then as restored from history
        expect(transcript(panel).get_by_text(image, exact=True)).to_be_visible()
        expect(transcript(panel).get_by_text(script, exact=True)).to_be_visible()
        expect(transcript(panel).locator("img, script")).to_have_count(0)
        assert page.evaluate("typeof window.__xss") == "undefined"
        page.reload()
        page.get_by_role("button", name="打开在线客服").click()


def test_refused_message_is_marked_failed_with_a_retry(page: Page, live_hub: LiveHub) -> None:
    too_long = "请问" * 1500  # well over the hub's 2000-character limit
    panel = open_chat(page, live_hub)
    send(panel, too_long)

    item = said_by_customer(panel, too_long)
    expect(item).to_contain_text("发送失败")
    expect(item).to_contain_text("消息过长")
    item.get_by_role("button", name="重试").click()
    expect(item).to_contain_text("发送失败")  # refused again, still offered for retry
    expect(transcript(panel).locator("li.sh-msg--bot")).to_have_count(0)


def test_unanswerable_question_shows_the_queue_banner(page: Page, live_hub: LiveHub) -> None:
    panel = open_chat(page, live_hub)
    send(panel, "我要投诉你们的客服")

    banner = panel.get_by_role("status").filter(has_text="正在为您转接人工客服")
    expect(banner).to_be_visible()
    expect(banner).to_have_text(re.compile(r"您当前排在第 \d+ 位"))


def test_logged_in_customer_is_verified_and_logout_forgets_them(
    page: Page, live_hub: LiveHub
) -> None:
    page.goto(f"{live_hub.base_url}/")
    customer = page.get_by_label("以演示客户身份登录：")
    expect(customer).to_be_visible()
    name = customer.locator("option").first.inner_text().split(" · ")[0]
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.get_by_text(f"当前：已登录为 {name}")).to_be_visible()

    page.get_by_role("button", name="打开在线客服").click()
    panel = page.get_by_role("dialog")
    expect(panel.get_by_text("已验证身份")).to_contain_text(name)
    send(panel, LOST_CARD)
    # .last: a verified customer's thread follows them, earlier visits included.
    expect(said_by_customer(panel, LOST_CARD).last).to_contain_text("已发送")

    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_text("当前：匿名访客")).to_be_visible()
    expect(panel.get_by_text("您好！请问有什么可以帮您？")).to_be_visible()
    expect(panel.get_by_text("已验证身份")).to_be_hidden()
    expect(transcript(panel).locator("li")).to_have_count(0)


def test_message_typed_during_an_outage_is_delivered_once(page: Page, live_hub: LiveHub) -> None:
    gate = SocketGate()
    gate.install(page)
    panel = open_chat(page, live_hub)
    send(panel, LOST_CARD)
    expect(said_by_customer(panel, LOST_CARD)).to_contain_text("已发送")

    gate.blocked = True
    gate.cut()
    expect(panel.get_by_role("status").filter(has_text="正在重新连接")).to_be_visible()
    question = "手机银行转账限额是多少"
    send(panel, question)
    wait_until(page, "a reconnect attempt was refused", lambda: gate.refused >= 1)
    expect(said_by_customer(panel, question)).to_contain_text("发送中")

    gate.blocked = False
    expect(said_by_customer(panel, question)).to_contain_text("已发送")

    # The hub's own record: history renders in one go, so a duplicate would show as 2.
    page.reload()
    page.get_by_role("button", name="打开在线客服").click()
    expect(said_by_customer(panel, question)).to_have_count(1)
    expect(said_by_customer(panel, LOST_CARD)).to_have_count(1)


def test_message_whose_ack_was_lost_is_resent_and_stored_once(
    page: Page, live_hub: LiveHub
) -> None:
    gate = SocketGate()
    gate.install(page)
    panel = open_chat(page, live_hub)
    question = "跨行转账多久能到账"
    gate.lose_ack_of = question
    send(panel, question)

    # Delivered through a second connection, re-sent with the same client_id.
    expect(said_by_customer(panel, question)).to_contain_text("已发送")
    assert gate.acks_lost == 1 and gate.connections >= 2
    expect(reply_to(panel, question)).not_to_have_count(0)

    page.reload()
    page.get_by_role("button", name="打开在线客服").click()
    expect(reply_to(panel, question)).not_to_have_count(0)
    expect(said_by_customer(panel, question)).to_have_count(1)


@pytest.mark.parametrize("locale", ["en-US"])
def test_english_browser_gets_the_english_widget(page: Page, live_hub: LiveHub) -> None:
    panel = open_chat(page, live_hub, launcher_name="Chat with us")
    expect(panel.get_by_text("Hello! How can we help you today?")).to_be_visible()
    send(panel, "how do I raise my transfer limit")

    answer = transcript(panel).locator("li.sh-msg--bot").filter(has_text="Source:").last
    expect(answer).to_be_visible()
    expect(said_by_customer(panel, "how do I raise my transfer limit")).to_contain_text("Sent")


def test_keyboard_use_and_focus(page: Page, live_hub: LiveHub) -> None:
    page.goto(f"{live_hub.base_url}/")
    launcher = page.get_by_role("button", name="打开在线客服")
    launcher.focus()
    page.keyboard.press("Enter")

    panel = page.get_by_role("dialog")
    textbox = panel.get_by_role("textbox", name="输入您的问题")
    expect(textbox).to_be_focused()
    page.keyboard.type("第一行")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("第二行")
    expect(textbox).to_have_value("第一行\n第二行")
    expect(transcript(panel).locator("li")).to_have_count(0)

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page.get_by_role("button", name="打开在线客服")).to_be_focused()


def test_panel_fills_a_phone_screen(page: Page, live_hub: LiveHub) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.emulate_media(reduced_motion="reduce")  # measure the panel, not its opening animation
    panel = open_chat(page, live_hub)
    box = panel.bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 390, 844)
    expect(panel.get_by_role("button", name="关闭在线客服")).to_be_visible()


def test_host_page_css_cannot_break_the_widget(page: Page, live_hub: LiveHub) -> None:
    page.goto(f"{live_hub.base_url}/")
    page.add_style_tag(
        content="""
        servicehub-webchat { display: none !important; }
        body { color: rgb(255, 0, 0) !important; font-size: 40px !important; }
        button, p, textarea { display: none !important; background: red !important; }
        """
    )
    page.get_by_role("button", name="打开在线客服").click()
    panel = page.get_by_role("dialog")
    greeting = panel.get_by_text("您好！请问有什么可以帮您？")
    expect(greeting).to_be_visible()
    assert greeting.evaluate("(node) => getComputedStyle(node).fontSize") == "15px"
    assert greeting.evaluate("(node) => getComputedStyle(node).color") != "rgb(255, 0, 0)"
    expect(panel.get_by_role("textbox")).to_be_visible()
