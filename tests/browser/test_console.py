"""The agent console at /console, in real Chromium against `servicehub serve`.

Customers are python-socketio web-chat clients (tests/chat_client.py); agents and the
supervisor are people at a browser, using the keyboard where the console offers a shortcut.
Each test's customer is a different verified demo customer, so a test only ever accepts the
offer for its own customer (`accept_offer`) even if another test left someone waiting.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, WebSocketRoute, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from hub.storage.models import AuditLog, Identity
from hub.storage.models import Customer as CustomerRecord
from tests.browser.conftest import DEMO_STAFF_PASSWORDS, Customer
from tests.browser.test_widget import SocketGate, wait_until
from tests.conftest import ADMIN_TOKEN, LiveHub

pytestmark = pytest.mark.browser

OpenConsole = Callable[[str], Page]
Customers = Callable[[str | None], Customer]

# Generous: an offer follows a bot turn, which includes model inference.
OFFER_TIMEOUT_MS = 60_000


@dataclass
class ReplyCutter:
    """Sits between the console and the hub. After the console sends a frame containing
    `marker`, the hub's first answer mentioning it (the `message` event or the ack, whichever
    comes first) is dropped and the connection cut, so the console cannot know its reply was
    stored. The marker is ASCII: the hub's JSON escapes Chinese characters.
    """

    marker: str
    sent: bool = False
    cut: bool = False
    connections: int = 0

    def install(self, page: Page) -> None:
        page.route_web_socket(re.compile(r"/socket\.io/"), self._route)

    def _route(self, page_side: WebSocketRoute) -> None:
        hub_side = page_side.connect_to_server()
        self.connections += 1

        def from_page(frame: str | bytes) -> None:
            if isinstance(frame, str) and self.marker in frame:
                self.sent = True
            hub_side.send(frame)

        def from_hub(frame: str | bytes) -> None:
            if self.sent and not self.cut and isinstance(frame, str) and self.marker in frame:
                self.cut = True
                page_side.close()
                hub_side.close()
                return
            page_side.send(frame)

        page_side.on_message(from_page)
        hub_side.on_message(from_hub)


# -- what an agent does ------------------------------------------------------------------------


def go_available(page: Page) -> None:
    available = page.get_by_role("radio", name="在线接待")
    available.click()
    expect(available).to_have_attribute("aria-checked", "true")


def accept_offer(page: Page, customer_name: str) -> None:
    """Accept, with Alt+A, the offer for `customer_name`; decline anyone else's before it."""
    offers = page.get_by_role("alertdialog")
    others = offers.filter(has_not_text=customer_name)
    deadline = time.monotonic() + OFFER_TIMEOUT_MS / 1000
    while not offers.first.filter(has_text=customer_name).count():
        if time.monotonic() > deadline:
            pytest.fail(f"no offer for {customer_name} came")
        if others.count():
            others.first.get_by_role("button", name="拒绝").click()
        page.wait_for_timeout(200)
    page.keyboard.press("Alt+A")
    expect(chat_title(page)).to_have_text(customer_name)


def wrap_up(page: Page, topic: str, resolution: str = "已解决") -> None:
    page.keyboard.press("Alt+W")
    dialog = page.get_by_role("dialog")
    dialog.get_by_label(resolution).check()
    dialog.get_by_label("主题").fill(topic)
    dialog.get_by_role("button", name="结束会话").click()
    expect(dialog).to_be_hidden()


def chat_title(page: Page) -> Locator:
    return page.locator("#chat-title")


def transcript(page: Page) -> Locator:
    return page.get_by_role("log", name="对话记录")


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name=re.compile("^输入"))


def reply(page: Page, text: str) -> None:
    composer(page).fill(text)
    composer(page).press("Enter")


def side_panel(page: Page) -> Locator:
    return page.get_by_role("tabpanel")


def conversation_list(page: Page) -> Locator:
    return page.get_by_role("navigation", name=re.compile("我的会话"))


def hub_conversation(hub: LiveHub, conversation_id: int) -> dict[str, Any]:
    """What the hub has on record, read with the admin token (not through the UI)."""
    request = urllib.request.Request(
        f"{hub.base_url}/api/conversations/{conversation_id}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def assert_delivered_once(
    page: Page, customer: Customer, hub: LiveHub, conversation_id: int, text: str
) -> None:
    """`text` reached the customer once and is stored once.

    A later reply is sent and awaited first: the customer's messages arrive in order, so a
    duplicate of `text` could not still be on its way.
    """
    reply(page, "还有其他可以帮您的吗？")
    customer.wait_for_text("agent", "还有其他可以帮您的吗？")
    assert customer.received("agent").count(text) == 1
    stored = hub_conversation(hub, conversation_id)["messages"]
    assert [m["text"] for m in stored].count(text) == 1


def screenshot(page: Page, name: str) -> None:
    """Save the screen for docs/console.md when SERVICEHUB_SCREENSHOT_DIR is set (docs/img)."""
    folder = os.environ.get("SERVICEHUB_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def hand_off(customer: Customer) -> int:
    """The customer asks for a person; returns the conversation's id once it is queued."""
    turn = customer.ask("转人工")
    assert any(m["handoff"] for m in turn), turn
    return int(turn[-1]["conversation_id"])


# -- tests ---------------------------------------------------------------------------------------


def test_agent_serves_a_verified_customer_from_offer_to_wrap_up(
    staff_console: OpenConsole, customers: Customers, live_hub: LiveHub
) -> None:
    li = staff_console("agent.li")
    go_available(li)
    customer = customers("C1001")
    conversation_id = hand_off(customer)
    accept_offer(li, "王建国")

    # Before typing a word: the bot's transcript, why it handed off, who the customer is.
    expect(transcript(li)).to_contain_text("转人工")
    handoff = li.get_by_role("region", name="转人工原因")
    expect(handoff).to_contain_text("客户要求人工")
    expect(handoff).to_contain_text("已验证")
    c360 = side_panel(li)
    expect(c360).to_contain_text("王建国")
    expect(c360).to_contain_text("C1001")
    expect(c360.get_by_title("客户分层")).to_have_text("高净值")
    expect(c360).to_contain_text("R4 进取型")
    expect(c360).to_contain_text("大额存单 3年期 2024年第3期")
    expect(c360).to_contain_text("2027-03-15")
    expect(c360).to_contain_text("银证转账 转入海港证券")
    expect(c360).to_contain_text("12月到期理财续作及大额存单配置咨询")
    # Card, ID and phone numbers masked; an agent may not reveal them.
    expect(c360).to_contain_text("+86 138****1001")
    expect(c360).to_contain_text("310***********0359")
    expect(c360).to_contain_text(re.compile(r"621999\*+3518"))
    page_text = li.locator("body").inner_text()
    for full in ("13800001001", "310115196804120359", "6219997110665803518"):
        assert full not in page_text
    expect(c360.get_by_role("button", name=re.compile("^显示"))).to_have_count(0)

    # Typing shows both ways; the reply reaches the customer.
    customer.typing(True)
    expect(li.get_by_role("status").filter(has_text="客户正在输入")).to_be_visible()
    customer.say("我的理财下个月到期，想续作")
    expect(transcript(li)).to_contain_text("我的理财下个月到期，想续作")
    expect(li.get_by_role("status").filter(has_text="客户正在输入")).to_be_hidden()
    composer(li).press_sequentially("王先生您好")
    wait_until(li, "the customer saw the agent typing", lambda: customer.saw_typing("agent"))
    composer(li).fill("王先生您好，我是李敏，马上为您查询。")
    composer(li).press("Control+Enter")
    customer.wait_for_text("agent", "王先生您好，我是李敏，马上为您查询。")
    expect(transcript(li).locator(".msg--agent").last).to_contain_text(re.compile("已发送|已送达"))

    # An internal note stays inside: the reply sent after it arrives, the note never does.
    li.keyboard.press("Alt+N")
    expect(li.get_by_role("textbox", name="输入内部备注（客户不可见）")).to_be_focused()
    reply(li, "内部备注：客户为私行客户，续作需双录")
    expect(transcript(li).locator(".msg--note")).to_contain_text("内部备注：客户为私行客户")
    li.keyboard.press("Alt+N")
    reply(li, "请稍等。")
    customer.wait_for_text("agent", "请稍等。")
    assert "内部备注：客户为私行客户，续作需双录" not in customer.received("agent")
    screenshot(li, "console-agent")

    # Transfer to the cards skill with a note; a colleague there is offered it.
    wang = staff_console("agent.wang")
    go_available(wang)
    li.keyboard.press("Alt+T")
    dialog = li.get_by_role("dialog")
    dialog.get_by_role("combobox", name="技能组").select_option(label="信用卡")
    dialog.get_by_label(re.compile("^转接说明")).fill("客户另有信用卡额度问题，请跟进")
    dialog.get_by_role("button", name="转接").click()
    expect(dialog).to_be_hidden()
    expect(conversation_list(li)).not_to_contain_text("王建国")

    accept_offer(wang, "王建国")
    expect(transcript(wang)).to_contain_text("王先生您好，我是李敏，马上为您查询。")
    expect(transcript(wang)).to_contain_text("客户另有信用卡额度问题，请跟进")

    # Wrap-up with a resolution and a topic closes it.
    wrap_up(wang, "理财续作")
    expect(conversation_list(wang)).not_to_contain_text("王建国")
    record = hub_conversation(live_hub, conversation_id)
    assert record["status"] == "closed"
    assert record["topic"] == "理财续作"


def test_customer_html_is_shown_as_text_and_never_runs(
    staff_console: OpenConsole, customers: Customers
) -> None:
    image = "<img src=x onerror=window.__xss=1>"
    script = "<script>window.__xss=1</script>"
    li = staff_console("agent.li")
    go_available(li)
    customer = customers("C1004")
    hand_off(customer)
    accept_offer(li, "张静")
    customer.say(image)
    customer.say(script)

    for _ in range(2):  # as it arrived live, then as re-read from the hub after a reload
        expect(transcript(li).get_by_text(image, exact=True)).to_be_visible()
        expect(transcript(li).get_by_text(script, exact=True)).to_be_visible()
        expect(transcript(li).locator("img, script")).to_have_count(0)
        expect(conversation_list(li).locator("img, script")).to_have_count(0)
        assert li.evaluate("typeof window.__xss") == "undefined"
        li.reload()
        expect(chat_title(li)).to_have_text("张静")

    wrap_up(li, "测试")


def add_record_sharing_a_phone(hub: LiveHub, display_name: str, channel: str, phone: str) -> int:
    """A second, unverified customer record on `phone` (as a contact on another channel
    would leave before anyone linked it), written straight into the live hub's database."""
    engine = create_engine(
        f"sqlite:///{hub.data_dir / 'servicehub.db'}", connect_args={"timeout": 30}
    )
    try:
        with Session(engine) as session, session.begin():
            record = CustomerRecord(display_name=display_name, risk_tags=[], profile={})
            session.add(record)
            session.flush()
            session.add(Identity(customer_id=record.id, channel=channel, address=phone))
            return int(record.id)
    finally:
        engine.dispose()


def audit_actions(hub: LiveHub, subject_id: str) -> list[tuple[str, str]]:
    engine = create_engine(f"sqlite:///{hub.data_dir / 'servicehub.db'}")
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(AuditLog.action, AuditLog.actor)
                .where(AuditLog.action.like("customer.merge%"), AuditLog.subject_id == subject_id)
                .order_by(AuditLog.id)
            )
            return [(action, actor) for action, actor in rows]
    finally:
        engine.dispose()


def test_agent_merges_a_suggested_match_and_undoes_it(
    staff_console: OpenConsole, customers: Customers, live_hub: LiveHub
) -> None:
    duplicate = add_record_sharing_a_phone(live_hub, "周女士", "whatsapp", "+8613800001006")
    li = staff_console("agent.li")
    go_available(li)
    customer = customers("C1006")
    conversation_id = hand_off(customer)
    accept_offer(li, "周秀英")

    c360 = side_panel(li)
    matches = c360.locator("section").filter(has_text="疑似同一客户")
    expect(matches).to_contain_text("周女士")
    expect(matches).to_contain_text("同一手机号")
    matches.get_by_role("button", name="合并 周女士").click()
    dialog = li.get_by_role("dialog")
    expect(dialog).to_contain_text("周女士 → 周秀英")
    confirm = dialog.get_by_role("button", name="确认")
    expect(confirm).to_be_disabled()  # a reason is required
    dialog.get_by_label(re.compile("^合并原因")).fill("客户确认 WhatsApp 号码是本人")
    confirm.click()
    expect(dialog).to_be_hidden()
    expect(matches).to_contain_text("已将 周女士 合并到此客户（已审计）")
    expect(matches.get_by_role("button", name="合并 周女士")).to_have_count(0)
    # The other record's WhatsApp identity is now this customer's (masked).
    identities = c360.locator("section").filter(has_text="渠道身份")
    expect(identities).to_contain_text("WhatsApp")

    matches.get_by_role("button", name="撤销合并").click()
    undo = li.get_by_role("dialog")
    undo.get_by_label(re.compile("^撤销原因")).fill("号码其实是家人的")
    undo.get_by_role("button", name="确认").click()
    expect(undo).to_be_hidden()
    expect(matches.get_by_role("button", name="合并 周女士")).to_be_visible()
    expect(identities).not_to_contain_text("WhatsApp")

    survivor = hub_conversation(live_hub, conversation_id)["customer"]["id"]
    actions = audit_actions(live_hub, str(survivor))
    assert [a for a, _ in actions] == ["customer.merge", "customer.merge_undo"], actions
    assert all(actor.endswith(":agent.li") for _, actor in actions), actions
    assert duplicate != survivor
    wrap_up(li, "身份合并")


def test_supervisor_watches_the_wallboard_and_takes_over(
    staff_console: OpenConsole, customers: Customers
) -> None:
    customer = customers("C1002")
    hand_off(customer)
    sun = staff_console("supervisor.sun")
    sun.get_by_role("button", name="监控大屏").click()
    live = sun.get_by_role("region", name="进行中的会话")
    row = live.get_by_role("row").filter(has_text="陈美玲")
    expect(row).to_contain_text("排队中")
    skill = row.get_by_role("cell").nth(2).inner_text()
    queue = sun.get_by_role("region", name="队列", exact=True).get_by_role("row", name=skill)
    expect(queue.get_by_role("cell").first).not_to_have_text("0")  # waiting
    # Nobody accepts within 30 s: the supervisor is alerted.
    expect(sun.get_by_role("alert").filter(has_text="SLA 超时")).to_be_visible(
        timeout=OFFER_TIMEOUT_MS
    )
    screenshot(sun, "console-supervisor")

    li = staff_console("agent.li")
    go_available(li)
    accept_offer(li, "陈美玲")
    expect(row).to_contain_text("李敏")
    agents = sun.get_by_role("region", name="坐席", exact=True)
    expect(agents.get_by_role("row").filter(has_text="李敏")).to_contain_text("1/3")
    expect(sun.get_by_role("alert").filter(has_text="SLA 超时")).to_be_hidden()

    row.get_by_role("button", name="接管").click()
    expect(chat_title(sun)).to_have_text("陈美玲")
    expect(conversation_list(li)).not_to_contain_text("陈美玲")
    reply(sun, "您好，我是值班主管孙丽华。")
    customer.wait_for_text("agent", "您好，我是值班主管孙丽华。")

    # A supervisor may reveal a masked number, giving a reason; it is audited by the hub.
    c360 = side_panel(sun)
    c360.get_by_role("button", name="显示 手机号").click()
    reveal = sun.get_by_role("dialog")
    reveal.get_by_label(re.compile("^查看原因")).fill("客户要求回电核实身份")
    reveal.get_by_role("button", name="确认").click()
    expect(c360).to_contain_text("+8613800001002")
    expect(c360).to_contain_text("已显示（已审计）")
    wrap_up(sun, "身份核实", resolution="需跟进")


def test_reply_typed_during_a_network_blip_is_delivered_once(
    staff_console: OpenConsole, customers: Customers, live_hub: LiveHub
) -> None:
    li = staff_console("agent.li")
    gate = SocketGate()
    gate.install(li)
    li.reload()  # so the console's WebSocket goes through the gate
    expect(li.get_by_role("status").filter(has_text="已连接")).to_be_visible()
    go_available(li)
    customer = customers("C1005")
    conversation_id = hand_off(customer)
    accept_offer(li, "赵磊")
    # An active risk alert stands out in the customer 360.
    expect(side_panel(li).get_by_role("alert")).to_contain_text("境外网站连续3笔无卡交易")

    gate.blocked = True
    gate.cut()
    expect(li.get_by_role("status").filter(has_text="正在重新连接")).to_be_visible()
    answer = "赵先生，您的问题已记录。"
    reply(li, answer)
    customer.say("断线期间客户发来的消息")
    wait_until(li, "a reconnect attempt was refused", lambda: gate.refused >= 1)
    expect(transcript(li).locator(".msg--pending")).to_contain_text("发送中")

    gate.blocked = False
    expect(li.get_by_role("status").filter(has_text="已连接")).to_be_visible()
    customer.wait_for_text("agent", answer)
    # Missed while away, re-read from the hub after the reconnect.
    expect(transcript(li)).to_contain_text("断线期间客户发来的消息")
    expect(transcript(li).locator(".msg--pending")).to_have_count(0)
    expect(transcript(li).get_by_text(answer, exact=True)).to_have_count(1)
    assert_delivered_once(li, customer, live_hub, conversation_id, answer)
    li.reload()
    expect(transcript(li).get_by_text(answer, exact=True)).to_have_count(1)
    wrap_up(li, "信用卡盗刷")


def test_reply_whose_ack_was_lost_is_resent_and_stored_once(
    staff_console: OpenConsole, customers: Customers, live_hub: LiveHub
) -> None:
    answer = "刘先生，分期方案已为您登记（REF-7731）。"
    li = staff_console("agent.li")
    cutter = ReplyCutter("REF-7731")
    cutter.install(li)
    li.reload()
    expect(li.get_by_role("status").filter(has_text="已连接")).to_be_visible()
    go_available(li)
    customer = customers("C1003")
    conversation_id = hand_off(customer)
    accept_offer(li, "刘洋")

    reply(li, answer)
    wait_until(li, "the hub's answer was lost", lambda: cutter.cut)
    wait_until(li, "the console reconnected", lambda: cutter.connections >= 2)
    expect(li.get_by_role("status").filter(has_text="已连接")).to_be_visible()
    # Re-sent with the same client id; the hub keeps (and delivers) the first one only.
    expect(transcript(li).get_by_text(answer, exact=True)).to_have_count(1)
    expect(transcript(li).locator(".msg--pending")).to_have_count(0)
    assert_delivered_once(li, customer, live_hub, conversation_id, answer)
    wrap_up(li, "逾期分期")


def test_help_overlay_and_language_switch(staff_console: OpenConsole) -> None:
    li = staff_console("agent.li")
    li.locator("body").press("?")
    help_dialog = li.get_by_role("dialog", name="键盘快捷键")
    expect(help_dialog).to_contain_text("Alt + A")
    expect(help_dialog).to_contain_text("Alt + W")
    li.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    li.get_by_role("button", name="界面语言").click()
    expect(li.get_by_role("radio", name="Available")).to_be_visible()
    expect(li.get_by_role("navigation", name=re.compile("My conversations"))).to_be_visible()
    li.get_by_role("button", name="Language").click()
    expect(li.get_by_role("radio", name="在线接待")).to_be_visible()


def test_editor_is_told_the_console_is_not_for_them(page: Page, live_hub: LiveHub) -> None:
    page.goto(f"{live_hub.base_url}/console")
    page.get_by_label("用户名").fill("editor.xu")
    page.get_by_label("密码").fill(DEMO_STAFF_PASSWORDS["editor.xu"])
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_contain_text("没有坐席工作台权限")
    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_role("button", name="登录")).to_be_visible()


def test_wrong_password_is_refused_in_the_users_language(page: Page, live_hub: LiveHub) -> None:
    page.goto(f"{live_hub.base_url}/console")
    page.get_by_label("用户名").fill("agent.li")
    page.get_by_label("密码").fill("not-the-password")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_have_text("用户名或密码不正确。")
