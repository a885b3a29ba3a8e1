"""An agent's day, end to end: python-socketio agents and customers against the real hub.

Handoff → offer → accept (transcript and handoff context on screen) → reply reaches the
customer → notes never do → transfer → wrap-up; and what happens when agents vanish,
offers expire, customers leave, SLAs are breached, queues overflow, customers come back.
Timers are driven with `hub.routing.tick(now=...)`; nothing here sleeps or times wall clocks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from hub.storage.models import Message
from knowledge.embedding import Embedder
from tests.chat_client import ChatClient
from tests.conftest import ADMIN_TOKEN, RunningHub
from tests.console.console_client import ConsoleClient
from tests.console.helpers import agent_id, call
from tests.console.routing_helpers import (
    console,
    conversation,
    hand_off,
    later,
    login,
    routing_hub,
    timeline,
)


@pytest_asyncio.fixture
async def hub(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> AsyncIterator[RunningHub]:
    async with routing_hub(demo_template, tmp_path, embedders) as running:
        yield running


@pytest.mark.parametrize(
    "database_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_handoff_offer_accept_reply_note_transfer_wrap_up(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder], database_kind: str
) -> None:
    async with routing_hub(demo_template, tmp_path, embedders, database_kind=database_kind) as hub:
        li = await console(hub, "agent.li")  # wealth, general
        customer, conversation_id = await hand_off(hub)

        offer = await li.offer_for(conversation_id)
        assert offer["conversation"]["status"] == "queued"
        assert offer["conversation"]["offered_agent_id"] == await agent_id(
            hub.hub.database, "agent.li"
        )
        assert offer["handoff"]["reason"] == "request_human"
        assert offer["handoff"]["skill"] == "general"
        assert offer["expires_at"]

        accepted = await li.ok("accept", {"conversation_id": conversation_id})
        detail = accepted["conversation"]
        assert detail["status"] == "assigned"
        # Before typing a word: the bot's transcript and why it handed off.
        authors = [m["author"] for m in detail["messages"]]
        assert authors[0] == "customer" and detail["messages"][0]["text"] == "转人工"
        assert authors.count("system") == 2  # the bot's handoff notice, then "joined"
        assert detail["handoff"]["reason"] == "request_human"
        assert detail["verification"]["verified"] is False
        await li.next("assigned", lambda a: a["conversation"]["id"] == conversation_id)
        joined = await _customer_gets(
            customer, lambda m: m["author"] == "system" and "接入" in m["text"]
        )
        assert "李敏" in joined["text"]

        # Typing, both ways.
        await customer.sio.call("typing", {"typing": True}, namespace="/chat", timeout=10)
        typing = await li.next("typing", lambda t: t["conversation_id"] == conversation_id)
        assert typing == {"conversation_id": conversation_id, "author": "customer", "typing": True}
        await li.ok("typing", {"conversation_id": conversation_id, "typing": True})
        await customer.wait_for(lambda: any(t["author"] == "agent" for t in customer.typing))

        # A reply reaches the customer; its delivery status comes back.
        reply = await li.send(conversation_id, "您好，我是李敏，请问有什么可以帮您？")
        assert reply["author"] == "agent" and reply["delivery_status"] == "sent"
        got = await _customer_gets(customer, lambda m: m["id"] == reply["id"])
        assert got["author"] == "agent" and got["text"].startswith("您好，我是李敏")
        status = await li.next("message_status", lambda s: s["id"] == reply["id"])
        assert status["delivery_status"] == "sent"

        # The customer answers: the agent sees it live, and the bot keeps out.
        ack = await customer.send("我想问一下信用卡年费")
        pushed = await li.next("message", lambda m: m["id"] == ack["id"])
        assert pushed["author"] == "customer" and pushed["text"] == "我想问一下信用卡年费"

        # A note is for staff only.
        note = await li.ok(
            "note",
            {"conversation_id": conversation_id, "text": "客户问年费，转卡部", "client_id": "n1"},
        )
        assert note["message"]["internal"] is True
        after_note = await li.send(conversation_id, "我帮您转到信用卡专员")
        await _customer_gets(customer, lambda m: m["id"] == after_note["id"])
        assert all("转卡部" not in m["text"] for m in customer.messages)
        assert all(m["id"] != note["message"]["id"] for m in await customer.history())

        # Transfer to the cards skill: li lets go, wang is offered it, with the note.
        wang = await console(hub, "agent.wang")  # cards, general
        await li.ok(
            "transfer",
            {"conversation_id": conversation_id, "to_skill": "cards", "note": "问年费减免"},
        )
        unassigned = await li.next("unassigned", lambda u: u["conversation_id"] == conversation_id)
        assert unassigned["reason"] == "transferred"
        await wang.offer_for(conversation_id)
        taken = await wang.ok("accept", {"conversation_id": conversation_id})
        transfer_events = [e for e in taken["conversation"]["events"] if e["kind"] == "transferred"]
        assert transfer_events[0]["data"]["note"] == "问年费减免"
        assert transfer_events[0]["data"]["to_skill"] == "cards"
        # The agent who passed it on no longer reads it.
        assert (
            await li.call(
                "send", {"conversation_id": conversation_id, "text": "x", "client_id": "x"}
            )
        )["error"]["code"] == "not_found"

        # Wrap-up closes it with a resolution code and topic.
        await wang.ok(
            "wrap_up",
            {
                "conversation_id": conversation_id,
                "resolution": "resolved",
                "topic": "card_annual_fee",
                "note": "已说明减免规则",
            },
        )
        closed = await conversation(hub, conversation_id)
        assert closed.status == "closed" and closed.closed_at is not None
        assert (closed.resolution, closed.wrap_up_code, closed.topic) == (
            "resolved",
            "resolved",
            "card_annual_fee",
        )
        assert closed.transfer_count == 1 and closed.accepted_at is not None
        assert await timeline(hub, conversation_id) == [
            "handoff",
            "offered",
            "accepted",
            "note",
            "transferred",
            "offered",
            "accepted",
            "wrap_up",
        ]
        for client in (li, wang):
            await client.close()
        await customer.close()


async def _customer_gets(
    customer: ChatClient, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    await customer.wait_for(lambda: any(predicate(m) for m in customer.messages))
    return next(m for m in customer.messages if predicate(m))


async def test_an_offer_nobody_answers_goes_to_the_next_agent(hub: RunningHub) -> None:
    li = await console(hub, "agent.li")
    zhou = await console(hub, "agent.zhou")  # became available later: less idle than li
    customer, conversation_id = await hand_off(hub)
    await li.offer_for(conversation_id)
    await hub.hub.routing.tick(now=later(hub.settings.routing.offer_seconds + 1))
    withdrawn = await li.next("offer_withdrawn", lambda w: w["conversation_id"] == conversation_id)
    assert withdrawn["reason"] == "expired"
    await zhou.offer_for(conversation_id)
    late = await li.call("accept", {"conversation_id": conversation_id})
    assert late["error"]["code"] == "not_found"  # no longer hers to see
    # Declining passes it on too, and it is not offered straight back.
    await zhou.ok("decline", {"conversation_id": conversation_id})
    await zhou.next("offer_withdrawn", lambda w: w["reason"] == "declined")
    assert await timeline(hub, conversation_id) == [
        "handoff",
        "offered",
        "offer_expired",
        "offered",
        "declined",
    ]
    for client in (li, zhou, customer):
        await client.close()


async def test_the_routing_loop_runs_the_timers_by_itself(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with routing_hub(
        demo_template, tmp_path, embedders, tick_seconds=0.2, offer_seconds=0.5
    ) as hub:
        li = await console(hub, "agent.li")
        customer, conversation_id = await hand_off(hub)
        await li.offer_for(conversation_id)
        withdrawn = await li.next(
            "offer_withdrawn", lambda w: w["conversation_id"] == conversation_id
        )
        assert withdrawn["reason"] == "expired"
        await li.close()
        await customer.close()


async def test_a_vanished_agents_conversation_returns_to_the_queue(hub: RunningHub) -> None:
    li = await console(hub, "agent.li")
    customer, conversation_id = await hand_off(hub)
    await li.offer_for(conversation_id)
    await li.ok("accept", {"conversation_id": conversation_id})
    priority = (await conversation(hub, conversation_id)).priority
    await li.close()  # the laptop lid closes: no more heartbeats

    await hub.hub.routing.tick(now=later(hub.settings.routing.heartbeat_timeout_seconds + 1))
    requeued = await conversation(hub, conversation_id)
    assert requeued.status == "queued" and requeued.assigned_agent_id is None
    assert requeued.priority == priority
    assert (await timeline(hub, conversation_id))[-1] == "requeued"

    zhou = await console(hub, "agent.zhou")
    await zhou.offer_for(conversation_id)
    detail = (await zhou.ok("accept", {"conversation_id": conversation_id}))["conversation"]
    assert any(m["text"] == "转人工" for m in detail["messages"])  # the history came along
    returning = await ConsoleClient(hub.base_url, await login(hub, "agent.li")).connect()
    hello = returning.of("hello")[0]
    assert hello["presence"] == "offline" and hello["assigned"] == []
    for client in (zhou, returning, customer):
        await client.close()


async def test_a_reconnect_within_the_grace_keeps_the_conversation_and_loses_nothing(
    hub: RunningHub,
) -> None:
    token = await login(hub, "agent.li")
    li = await ConsoleClient(hub.base_url, token).connect()
    await li.ok("presence", {"status": "available"})
    customer, conversation_id = await hand_off(hub)
    await li.offer_for(conversation_id)
    await li.ok("accept", {"conversation_id": conversation_id})
    first = {"conversation_id": conversation_id, "text": "请稍等，我查一下", "client_id": "r1"}
    sent = (await li.ok("send", first))["message"]
    await li.close()  # network blip

    during = await customer.send("好的，我等您")
    await hub.hub.routing.tick(now=later(hub.settings.routing.heartbeat_timeout_seconds - 5))
    assert (await conversation(hub, conversation_id)).status == "assigned"

    back = await ConsoleClient(hub.base_url, token).connect()
    hello = back.of("hello")[0]
    assert hello["presence"] == "available"
    held = [c for c in hello["assigned"] if c["id"] == conversation_id]
    assert held and held[0]["unread"] >= 1
    status, detail = await call(hub, "GET", f"/api/conversations/{conversation_id}", token=token)
    assert status == 200
    assert during["id"] in [m["id"] for m in detail["messages"]]
    # The console retries the send it never saw acked: the customer still gets it once.
    again = (await back.ok("send", first))["message"]
    assert again["id"] == sent["id"]
    await back.ok("read", {"conversation_id": conversation_id, "message_id": during["id"]})
    _, listed = await call(hub, "GET", "/api/conversations?mine=1", token=token)
    assert [c["unread"] for c in listed["conversations"] if c["id"] == conversation_id] == [0]
    async with hub.hub.database.read() as session:
        copies = await session.scalars(
            select(Message.id).where(
                Message.conversation_id == conversation_id, Message.text == first["text"]
            )
        )
        assert len(list(copies)) == 1
    assert [m["id"] for m in customer.messages].count(sent["id"]) == 1
    await back.close()
    await customer.close()


async def test_an_sla_breach_alerts_supervisors_who_can_take_over(hub: RunningHub) -> None:
    board = await console(hub, "supervisor.sun", namespace="/supervisor")
    customer, conversation_id = await hand_off(hub)  # nobody is available
    update = await board.next(
        "wallboard",
        lambda b: any(q["skill"] == "general" and q["waiting"] == 1 for q in b["queues"]),
    )
    assert update["today"]["overall"]["handoffs"] >= 1

    await hub.hub.routing.tick(now=later(hub.settings.routing.sla_seconds + 1))
    breach = await board.next("sla_breach")
    assert breach["conversation_id"] == conversation_id and breach["skill"] == "general"
    assert breach["waiting_seconds"] >= hub.settings.routing.sla_seconds
    assert (await conversation(hub, conversation_id)).sla_breached_at is not None

    sun = await console(hub, "supervisor.sun", available=False)
    taken = await board.ok("take_over", {"conversation_id": conversation_id})
    assert taken["conversation"]["status"] == "assigned"
    await sun.next("assigned", lambda a: a["conversation"]["id"] == conversation_id)
    reply = await sun.send(conversation_id, "您好，我是值班主管")
    await _customer_gets(customer, lambda m: m["id"] == reply["id"])
    assert (await timeline(hub, conversation_id))[-2:] == ["sla_breach", "taken_over"]
    for client in (board, sun, customer):
        await client.close()


async def test_a_supervisor_takes_a_conversation_from_an_agent(hub: RunningHub) -> None:
    li = await console(hub, "agent.li")
    customer, conversation_id = await hand_off(hub)
    await li.offer_for(conversation_id)
    await li.ok("accept", {"conversation_id": conversation_id})
    sun = await console(hub, "supervisor.sun", available=False)
    watched = await sun.ok("join", {"conversation_id": conversation_id})
    assert watched["conversation"]["assigned_agent_id"] == await agent_id(
        hub.hub.database, "agent.li"
    )
    said = await customer.send("我要找你们领导")
    await sun.next("message", lambda m: m["id"] == said["id"])  # watching live
    await sun.ok("take_over", {"conversation_id": conversation_id})
    gone = await li.next("unassigned", lambda u: u["conversation_id"] == conversation_id)
    assert gone["reason"] == "taken_over"
    refused = await li.call(
        "send", {"conversation_id": conversation_id, "text": "还在吗", "client_id": "late"}
    )
    assert refused["error"]["code"] == "not_found"
    for client in (li, sun, customer):
        await client.close()


async def test_a_long_wait_overflows_to_general_agents(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with routing_hub(
        demo_template, tmp_path, embedders, heartbeat_timeout_seconds=600
    ) as hub:
        customer, conversation_id = await hand_off(hub)
        sun = await console(hub, "supervisor.sun", available=False)
        await sun.ok("transfer", {"conversation_id": conversation_id, "to_skill": "insurance"})
        li = await console(hub, "agent.li")  # wealth and general: no insurance
        await hub.hub.routing.route()
        assert (await conversation(hub, conversation_id)).offered_agent_id is None
        await hub.hub.routing.tick(now=later(hub.settings.routing.overflow_seconds + 1))
        offer = await li.offer_for(conversation_id)
        assert offer["conversation"]["skill"] == "insurance"
        overflowed = await conversation(hub, conversation_id)
        assert overflowed.overflowed_at is not None
        assert "overflowed" in await timeline(hub, conversation_id)
        for client in (li, sun, customer):
            await client.close()


async def test_a_customer_who_leaves_the_queue_abandons_it_unless_they_come_back(
    hub: RunningHub,
) -> None:
    leaver, left_id = await hand_off(hub)
    visitor = f"visitor-{uuid.uuid4().hex}"
    blip, blip_id = await hand_off(hub, visitor_id=visitor)
    await leaver.close()
    await blip.close()
    back = await ChatClient(hub.base_url, visitor_id=visitor).connect()
    await hub.hub.routing.tick(now=later(hub.settings.routing.abandon_seconds + 1))

    abandoned = await conversation(hub, left_id)
    assert abandoned.status == "closed" and abandoned.resolution == "abandoned"
    assert (await timeline(hub, left_id))[-1] == "abandoned"
    assert (await conversation(hub, blip_id)).status == "queued"
    status, metrics = await call(
        hub, "GET", "/api/metrics?days=1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert status == 200 and metrics["overall"]["abandonment"] == 0.5
    await back.close()


async def test_the_agent_who_served_the_customer_today_gets_them_again(hub: RunningHub) -> None:
    visitor = f"visitor-{uuid.uuid4().hex}"
    li = await console(hub, "agent.li")
    customer, first_id = await hand_off(hub, visitor_id=visitor)
    await li.offer_for(first_id)
    await li.ok("accept", {"conversation_id": first_id})
    await li.ok(
        "wrap_up", {"conversation_id": first_id, "resolution": "resolved", "topic": "general"}
    )
    await customer.close()
    zhou = await console(hub, "agent.zhou")
    # Another customer goes to li (idle longest), so zhou is now the longest idle agent.
    other, other_id = await hand_off(hub)
    await li.offer_for(other_id)

    again, second_id = await hand_off(hub, visitor_id=visitor)
    assert second_id != first_id
    offer = await li.offer_for(second_id)
    assert (
        offer["conversation"]["customer"]["id"] == (await conversation(hub, first_id)).customer_id
    )
    assert zhou.of("offer") == []
    for client in (li, zhou, other, again):
        await client.close()
