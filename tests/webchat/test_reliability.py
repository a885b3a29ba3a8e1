"""Nothing a customer sends is lost: crashes between commit and reply, many customers at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from hub.domain import CustomerAddress, InboundMessage
from hub.storage.models import Message
from knowledge.embedding import Embedder
from tests.chat_client import ChatClient
from tests.conftest import RunningHub, copy_template, hub_settings, run_hub


async def test_a_message_a_crash_left_unanswered_is_answered_after_restart(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    settings = hub_settings(copy_template(demo_template, tmp_path / "data"))
    visitor = "crash-test-visitor-1"
    address = CustomerAddress("webchat", f"visitor:{visitor}")
    async with run_hub(settings, embedders) as first:
        receipt = await first.hub.router.accept(
            InboundMessage(
                address=address, text="信用卡年费怎么免", channel_message_id=f"{address.address}/m1"
            )
        )
        # The process "dies" right after the commit: its pending work never runs.
        await first.hub.tasks.drain(timeout=0)
        async with first.hub.database.read() as session:
            stored = await session.get(Message, receipt.message_id)
            replies = await session.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "outbound")
            )
        assert stored is not None and stored.handled_at is None
        assert replies == 0

    async with run_hub(settings, embedders) as second:
        await second.hub.tasks.wait_idle()
        client = await ChatClient(second.base_url, visitor_id=visitor).connect()
        try:
            history = await client.history()
        finally:
            await client.close()
    assert [m["author"] for m in history[:2]] == ["customer", "bot"]
    assert history[1]["sources"]


async def test_many_customers_at_once_each_get_exactly_their_answer(
    running_hub_any_db: RunningHub,
) -> None:
    questions = [
        "信用卡年费怎么免",
        "大额存单多少钱起存",
        "跨行转账多久能到账",
        "how do I raise my transfer limit",
    ]
    clients = [ChatClient(running_hub_any_db.base_url) for _ in range(24)]
    await asyncio.gather(*(c.connect() for c in clients))
    try:
        turns = await asyncio.gather(
            *(c.ask(questions[i % len(questions)], timeout=120) for i, c in enumerate(clients))
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    for client, replies in zip(clients, turns, strict=True):
        assert len(replies) == 1 and replies[0]["author"] == "bot" and replies[0]["sources"]
        assert all(m["conversation_id"] == replies[0]["conversation_id"] for m in client.messages)
    conversation_ids = {replies[0]["conversation_id"] for replies in turns}
    assert len(conversation_ids) == len(clients)
    async with running_hub_any_db.hub.database.read() as session:
        inbound = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "inbound")
        )
        unhandled = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.direction == "inbound", Message.handled_at.is_(None))
        )
        undelivered = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.direction == "outbound", Message.delivery_status != "sent")
        )
    assert (inbound, unhandled, undelivered) == (len(clients), 0, 0)


async def test_messages_of_one_conversation_are_answered_in_order(running_hub: RunningHub) -> None:
    client = await ChatClient(running_hub.base_url).connect()
    try:
        first = await client.send("信用卡年费怎么免")
        second = await client.send("大额存单多少钱起存")

        def both_answered() -> bool:
            return sum(1 for t in client.typing if t["typing"] is False) >= 2

        await client.wait_for(both_answered, timeout=60)
        history = await client.history()
    finally:
        await client.close()
    assert [m["author"] for m in history] == ["customer", "customer", "bot", "bot"] or [
        m["author"] for m in history
    ] == ["customer", "bot", "customer", "bot"]
    answers = [m for m in history if m["author"] == "bot"]
    assert "年费" in answers[0]["sources"][0]["title"]
    assert "存单" in answers[1]["sources"][0]["title"]
    assert first["id"] < second["id"]
