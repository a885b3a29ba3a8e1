"""What a bot's answer leaves in the database, on SQLite and PostgreSQL.

Answers are written by condition with prebuilt Core statements (`Router._store_answer`), not
through ORM objects, so these check the stored outcome itself: the customer's message marked
handled, the answer with its sources and bot facts, delivered, and the conversation's topic,
miss count and first response.
"""

from __future__ import annotations

from sqlalchemy import select

from bots.base import BotReply
from hub.domain import CustomerAddress, CustomerContext
from hub.storage.models import Message
from routing.router import _Work
from tests.chat_client import ChatClient
from tests.conftest import RunningHub
from tests.console.routing_helpers import conversation


async def _messages(hub: RunningHub, conversation_id: int) -> list[Message]:
    async with hub.hub.database.read() as session:
        rows = await session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        return list(rows)


async def test_an_answer_is_recorded_with_the_conversation_facts(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    client = await ChatClient(hub.base_url).connect()
    try:
        (answer,) = await client.ask("信用卡丢了怎么挂失")
        conversation_id = answer["conversation_id"]
        first = await conversation(hub, conversation_id)
        question, stored = await _messages(hub, conversation_id)

        assert question.author == "customer" and question.handled_at is not None
        assert (
            stored.id == answer["id"] and stored.author == "bot" and stored.direction == "outbound"
        )
        assert stored.text == answer["text"] and stored.handoff is False and not stored.internal
        assert stored.sources == answer["sources"] and stored.sources
        assert stored.meta["bot"] and stored.meta["intent"] and stored.meta["confidence"] > 0
        assert stored.delivery_status == "sent"
        assert stored.created_at == first.first_response_at == first.last_message_at
        assert first.topic == "card"  # the cited article's category
        assert first.bot_misses == 0

        # A miss (off-topic, not yet a handoff) counts; the first response stays the first.
        (miss,) = await client.ask("tell me a joke")
        assert miss["author"] == "bot" and not miss["handoff"] and not miss["sources"]
        missed = await conversation(hub, conversation_id)
        assert missed.bot_misses == 1
        assert missed.first_response_at == first.first_response_at
        assert missed.last_message_at > first.last_message_at

        # An answer again resets the count, and a reply without a topic keeps the old one.
        await client.ask("跨行转账多久能到账")
        answered = await conversation(hub, conversation_id)
        assert answered.bot_misses == 0 and answered.topic not in (None, "out_of_scope")
        assert all(
            m.handled_at is not None
            for m in await _messages(hub, conversation_id)
            if m.author == "customer"
        )
    finally:
        await client.close()


async def test_an_answer_to_a_message_handled_meanwhile_is_not_stored(
    running_hub_any_db: RunningHub,
) -> None:
    """Two runs of one message (a resumed run racing the first, in another process): the
    second's answer is dropped by the write's own condition, not by an earlier read."""
    hub = running_hub_any_db
    client = await ChatClient(hub.base_url).connect()
    try:
        (answer,) = await client.ask("大额存单多少钱起存")
    finally:
        await client.close()
    conversation_id = answer["conversation_id"]
    question = (await _messages(hub, conversation_id))[0]
    work = _Work(
        message_id=question.id,
        text=question.text,
        address=CustomerAddress("webchat", "visitor"),
        context=CustomerContext(
            customer_id=0,
            conversation_id=conversation_id,
            channel="webchat",
            verified=False,
            language="zh",
        ),
        customer_id=0,
    )
    late = BotReply(texts=("a second answer",), language="zh", intent="ask_kb", missed=True)
    assert await hub.hub.router._store_reply(work, late) == []
    stored = await _messages(hub, conversation_id)
    assert [m.author for m in stored] == ["customer", "bot"]
    assert stored[0].handled_at == question.handled_at
    assert (
        await conversation(hub, conversation_id)
    ).bot_misses == 0  # the late miss is not counted
