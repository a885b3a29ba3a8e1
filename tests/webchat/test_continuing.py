"""A known contact writing again, on SQLite and PostgreSQL (`routing/continuing.py`).

Such messages are stored by three prebuilt Core statements; everything that changes who the
contact is, or which conversation they are in, takes the general path. These check that both
paths keep the same records.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from bots.base import Bot, BotReply
from hub.clock import utcnow
from hub.domain import CustomerContext
from hub.identity_tokens import issue_identity_token
from hub.storage.models import Conversation, Customer, Identity, Message
from routing.conversations import BOT_IDLE_TIMEOUT
from tests.chat_client import ChatClient
from tests.conftest import IDENTITY_SECRET, RunningHub
from tests.console.routing_helpers import conversation as read_conversation


async def _identity(hub: RunningHub, conversation_id: int) -> Identity:
    conversation = await read_conversation(hub, conversation_id)
    async with hub.hub.database.read() as session:
        identity = await session.get(Identity, conversation.identity_id)
    assert identity is not None
    return identity


async def test_a_known_visitor_goes_on_in_their_conversation(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    client = await ChatClient(hub.base_url).connect()
    try:
        first = await client.send("你好")
        await client.ask("信用卡丢了怎么挂失")
        second = await client.send("跨行转账多久能到账")
        await client.wait_for(lambda: len(client.typing) >= 6)  # three turns, on and off
    finally:
        await client.close()
    assert first["conversation_id"] == second["conversation_id"]
    conversation = await read_conversation(hub, second["conversation_id"])
    async with hub.hub.database.read() as session:
        message = await session.get(Message, second["id"])
        conversations = await session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.identity_id == conversation.identity_id)
        )
    assert message is not None and message.author == "customer" and message.direction == "inbound"
    assert message.text == "跨行转账多久能到账" and message.delivery_status == "received"
    assert message.conversation_id == conversation.id and message.handled_at is not None
    assert conversations == 1
    assert conversation.status == "bot" and conversation.verified is False
    assert conversation.last_message_at >= message.created_at


async def test_a_verified_customer_goes_on_verified(running_hub_any_db: RunningHub) -> None:
    hub = running_hub_any_db
    token = issue_identity_token(IDENTITY_SECRET, "C1001")
    client = await ChatClient(hub.base_url, token=token).connect()
    try:
        first = await client.send("你好")
        second = await client.send("信用卡年费怎么免")
    finally:
        await client.close()
    assert first["conversation_id"] == second["conversation_id"]
    conversation = await read_conversation(hub, second["conversation_id"])
    identity = await _identity(hub, second["conversation_id"])
    async with hub.hub.database.read() as session:
        customer = await session.get(Customer, conversation.customer_id)
    assert customer is not None and customer.external_id == "C1001"
    assert identity.verified is True and conversation.verified is True


async def test_an_idle_bot_conversation_closes_and_the_next_message_opens_one(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    client = await ChatClient(hub.base_url).connect()
    try:
        first = await client.send("你好")
        await client.wait_for(lambda: any(t["typing"] is False for t in client.typing))
        long_ago = utcnow() - BOT_IDLE_TIMEOUT - timedelta(minutes=1)
        async with hub.hub.database.write() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == first["conversation_id"])
                .values(last_message_at=long_ago)
            )
        second = await client.send("信用卡年费怎么免")
    finally:
        await client.close()
    assert second["conversation_id"] != first["conversation_id"]
    old = await read_conversation(hub, first["conversation_id"])
    new = await read_conversation(hub, second["conversation_id"])
    assert old.status == "closed" and old.resolution == "bot_idle" and old.closed_at is not None
    assert new.status == "bot" and new.identity_id == old.identity_id


async def test_last_seen_is_written_at_most_once_a_minute(running_hub_any_db: RunningHub) -> None:
    hub = running_hub_any_db
    client = await ChatClient(hub.base_url).connect()
    try:
        first = await client.send("你好")
        identity = await _identity(hub, first["conversation_id"])
        earlier = utcnow() - timedelta(minutes=2)
        async with hub.hub.database.write() as session:
            await session.execute(
                update(Identity).where(Identity.id == identity.id).values(last_seen_at=earlier)
            )
        await client.send("在吗")
        refreshed = (await _identity(hub, first["conversation_id"])).last_seen_at
        await client.send("还在吗")
        kept = (await _identity(hub, first["conversation_id"])).last_seen_at
    finally:
        await client.close()
    assert refreshed is not None and refreshed > earlier + timedelta(minutes=1)
    assert kept == refreshed


class RecordingBot:
    """The hub's bot, with every context it was given kept for the test."""

    def __init__(self, inner: Bot) -> None:
        self.inner = inner
        self.name = inner.name
        self.contexts: list[CustomerContext] = []

    async def respond(self, text: str, context: CustomerContext) -> BotReply:
        self.contexts.append(context)
        return await self.inner.respond(text, context)


async def test_the_bot_gets_the_conversation_so_far(running_hub_any_db: RunningHub) -> None:
    hub = running_hub_any_db
    bot = RecordingBot(hub.hub.router.bot)
    hub.hub.router.bot = bot
    token = issue_identity_token(IDENTITY_SECRET, "C1001")
    client = await ChatClient(hub.base_url, token=token).connect()
    try:
        (answer,) = await client.ask("信用卡丢了怎么挂失")
        await client.ask("跨行转账多久能到账")
    finally:
        await client.close()
    first, second = bot.contexts
    async with hub.hub.database.read() as session:
        customer = await session.get(Customer, second.customer_id)
    assert customer is not None and customer.external_id == "C1001"
    assert first.previous_messages == () and first.articles_shown == ()
    assert second.conversation_id == answer["conversation_id"] and second.channel == "webchat"
    assert second.verified and second.external_id == "C1001"
    assert second.display_name == customer.display_name and second.segment == customer.segment
    assert second.language == "zh" and second.topic == "card" and second.consecutive_misses == 0
    assert second.previous_messages == (
        ("customer", "信用卡丢了怎么挂失"),
        ("bot", answer["text"]),
    )
    assert [(s.id, s.title) for s in second.articles_shown] == [
        (s["id"], s["title"]) for s in answer["sources"]
    ]


async def test_an_anonymous_visitor_s_context_names_no_one(running_hub_any_db: RunningHub) -> None:
    hub = running_hub_any_db
    bot = RecordingBot(hub.hub.router.bot)
    hub.hub.router.bot = bot
    client = await ChatClient(hub.base_url).connect()
    try:
        await client.ask("how do I raise my transfer limit")
    finally:
        await client.close()
    (context,) = bot.contexts
    assert not context.verified and context.display_name is None and context.external_id is None
    assert context.language == "en"
