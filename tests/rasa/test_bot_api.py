"""The hub's bot-facing API, as Rasa's action server calls it: KB answers and holdings."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bots.turn_grants import TurnGrants
from hub.domain import CustomerContext
from hub.identity_tokens import issue_identity_token
from hub.storage.models import AuditLog, Conversation, Customer, KbUnanswered
from tests.chat_client import ChatClient
from tests.conftest import IDENTITY_SECRET, RunningHub

SKILLS = {"wealth", "loans", "cards", "insurance", "securities", "general"}
C1001_ACCOUNTS = ("8801195106049697", "8801855203183893", "8801368969670558")

# The first test of a run builds the demo hub (KB index and all); on a busy two-core machine
# that alone can pass pytest's default 300 s, which says nothing about what is tested here.
pytestmark = pytest.mark.timeout(1200)


async def call(
    hub: RunningHub,
    path: str,
    params: Any = None,
    token: str | None = "service",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    sent = dict(headers or {})
    if token == "service":
        token = hub.hub.settings.bot_service_token
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(hub.base_url + path, params=params, headers=sent) as response,
    ):
        return response.status, await response.json()


async def open_conversation(hub: RunningHub, customer: str | None = None) -> int:
    token = issue_identity_token(IDENTITY_SECRET, customer) if customer else None
    client = await ChatClient(hub.base_url, token=token).connect()
    try:
        ack = await client.send("你好")
    finally:
        await client.close()
    return int(ack["conversation_id"])


def grant(conversation_id: int) -> dict[str, str]:
    return {"X-Servicehub-Turn": TurnGrants.from_secret(IDENTITY_SECRET).issue(conversation_id)}


async def audit_rows(hub: RunningHub) -> list[AuditLog]:
    async with hub.hub.database.read() as session:
        rows = await session.scalars(
            select(AuditLog).where(AuditLog.action == "customer.holdings.read")
        )
        return list(rows)


async def test_every_route_needs_the_bot_service_token(running_hub: RunningHub) -> None:
    conversation = await open_conversation(running_hub)
    params = {"q": "信用卡丢了怎么挂失", "conversation_id": str(conversation)}
    status, body = await call(running_hub, "/api/bot/kb/answer", params, token=None)
    assert status == 401 and body["code"] == "unauthenticated"
    status, body = await call(running_hub, "/api/bot/kb/answer", params, token="wrong-token")
    assert status == 403
    path = f"/api/bot/conversations/{conversation}/holdings"
    status, _ = await call(running_hub, path, token=running_hub.hub.settings.admin_token)
    assert status == 403  # the admin token is not the bot's


async def test_kb_answer_quotes_and_cites_exactly_as_the_embedded_bot(
    running_hub: RunningHub,
) -> None:
    conversation = await open_conversation(running_hub)
    question = "信用卡丢了怎么挂失"
    status, body = await call(
        running_hub,
        "/api/bot/kb/answer",
        {"q": question, "conversation_id": str(conversation), "language": "zh"},
    )
    assert status == 200, body
    assert body["answerable"] is True and body["sources"]
    assert body["sources"][0]["title"] in body["text"]
    assert body["skill"] in SKILLS
    embedded = await running_hub.hub.bot.respond(
        question,
        CustomerContext(
            customer_id=1,
            conversation_id=conversation,
            channel="webchat",
            verified=False,
            language="zh",
        ),
    )
    assert embedded.texts == (body["text"],)
    assert [{"id": s.id, "title": s.title} for s in embedded.sources] == body["sources"]


async def test_an_unanswerable_question_is_recorded_for_editors_when_asked(
    running_hub: RunningHub,
) -> None:
    conversation = await open_conversation(running_hub)
    question = "你们能帮我办理遗产继承的存款过户吗，需要公证书吗"

    async def unanswered() -> int:
        async with running_hub.hub.database.read() as session:
            query = select(func.count()).select_from(KbUnanswered)
            return int(await session.scalar(query.where(KbUnanswered.question == question)) or 0)

    params = {"q": question, "conversation_id": str(conversation), "record": "0"}
    status, body = await call(running_hub, "/api/bot/kb/answer", params)
    assert status == 200 and body["answerable"] is False and body["text"] is None
    assert body["skill"] in SKILLS and body["signals"]
    assert await unanswered() == 0
    await call(running_hub, "/api/bot/kb/answer", {**params, "record": "1"})
    assert await unanswered() == 1


async def test_kb_answer_rejects_bad_input(running_hub: RunningHub) -> None:
    conversation = str(await open_conversation(running_hub))
    for params, status in (
        ({"conversation_id": conversation}, 400),
        ({"q": "x" * 1001, "conversation_id": conversation}, 400),
        ({"q": "hi"}, 400),
        ({"q": "hi", "conversation_id": "abc"}, 400),
        ({"q": "hi", "conversation_id": "999999"}, 404),
        ({"q": "hi", "conversation_id": conversation, "language": "fr"}, 400),
    ):
        got, body = await call(running_hub, "/api/bot/kb/answer", params)
        assert got == status, (params, body)
        assert body["message"]


async def test_a_verified_customer_s_holdings_come_masked_and_every_read_is_audited(
    running_hub: RunningHub,
) -> None:
    conversation = await open_conversation(running_hub, "C1001")
    path = f"/api/bot/conversations/{conversation}/holdings"
    status, body = await call(running_hub, path, [("kind", "wealth")], headers=grant(conversation))
    assert status == 200, body
    holdings = body["holdings"]
    assert {h["maturity_date"] for h in holdings} == {"2026-12-18", "2027-03-02", "2027-06-10"}
    assert {h["kind"] for h in holdings} == {"wealth"}
    assert {h["account"] for h in holdings} == {"****" + a[-4:] for a in C1001_ACCOUNTS}
    assert not any(account in str(body) for account in C1001_ACCOUNTS)
    (audit,) = await audit_rows(running_hub)
    async with running_hub.hub.database.read() as session:
        conv = await session.get(Conversation, conversation)
        customer = await session.scalar(select(Customer).where(Customer.external_id == "C1001"))
    assert conv is not None and customer is not None and conv.customer_id == customer.id
    assert (audit.actor, audit.subject_type, audit.subject_id) == (
        "service:rasa",
        "customer",
        str(customer.id),
    )
    assert audit.reason and audit.details["conversation_id"] == conversation
    status, body = await call(running_hub, path, headers=grant(conversation))
    assert status == 200 and len(body["holdings"]) == 6  # no kind: all of them
    assert len(await audit_rows(running_hub)) == 2


async def test_holdings_need_a_live_grant_for_that_very_conversation(
    running_hub: RunningHub,
) -> None:
    verified = await open_conversation(running_hub, "C1001")
    other = await open_conversation(running_hub, "C1002")
    path = f"/api/bot/conversations/{verified}/holdings"
    for headers in ({}, {"X-Servicehub-Turn": "123.abc"}, grant(other)):
        status, body = await call(running_hub, path, headers=headers)
        assert status == 403 and body["code"] == "forbidden", body
    assert await audit_rows(running_hub) == []


async def test_an_unverified_conversation_never_gets_holdings(running_hub: RunningHub) -> None:
    conversation = await open_conversation(running_hub)
    path = f"/api/bot/conversations/{conversation}/holdings"
    status, body = await call(running_hub, path, headers=grant(conversation))
    assert status == 403 and body["code"] == "not_verified"
    assert "holdings" not in body
    assert await audit_rows(running_hub) == []


async def test_holdings_reject_bad_input(running_hub: RunningHub) -> None:
    conversation = await open_conversation(running_hub, "C1001")
    path = f"/api/bot/conversations/{conversation}/holdings"
    status, body = await call(running_hub, path, [("kind", "yacht")], headers=grant(conversation))
    assert status == 400 and "yacht" in body["message"]
    status, _ = await call(
        running_hub, "/api/bot/conversations/777777/holdings", headers=grant(777777)
    )
    assert status == 404
