"""What the channel tests read from (and, to stage a crash, write to) the hub's database.

Every channel test asks the same questions of the store: which messages there are, how many,
what became of one reply, who a customer is. Asking them one way keeps the tests' notion
of "stored" the same across providers.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from hub.clock import utcnow
from hub.domain import Author, DeliveryStatus, Direction
from hub.storage.models import Customer, Identity, Message
from tests.conftest import RunningHub

# How long a test waits for a background sender before it fails: generous for a busy machine.
DEADLINE_SECONDS = 60.0


async def messages(hub: RunningHub, **where: object) -> list[Message]:
    """The stored messages whose columns equal `where` (`channel="sms"`, ...), oldest first."""
    async with hub.hub.database.read() as session:
        query = select(Message).order_by(Message.id)
        for column, value in where.items():
            query = query.where(getattr(Message, column) == value)
        return list(await session.scalars(query))


async def message_count(hub: RunningHub) -> int:
    """How many messages are stored: refused input must leave it unchanged."""
    async with hub.hub.database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def stored_message(hub: RunningHub, message_id: int) -> Message:
    """The message as stored now (a fresh read, not the object a test may hold)."""
    async with hub.hub.database.read() as session:
        message = await session.get(Message, message_id)
    assert message is not None, message_id
    return message


async def wait_status(hub: RunningHub, message_id: int, status: str) -> Message:
    """Wait until the message shows `status`, sent by a sender the test does not drive.

    For hubs whose outbox runner (or a Celery worker) works in the background: poll the row.
    """
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            message = await stored_message(hub, message_id)
            if message.delivery_status == status:
                return message
            await asyncio.sleep(0.05)  # another task or process writes it: nothing to await on


async def deliver_until_status(hub: RunningHub, message_id: int, status: str) -> Message:
    """Run the outbox's due sends until the message shows `status`.

    For hubs whose outbox the test drives: woken by the test, not by time, so a slow poll
    interval never makes the test slow.
    """
    outbox = hub.hub.outbox
    assert outbox is not None
    for _ in range(200):
        message = await stored_message(hub, message_id)
        if message.delivery_status == status:
            return message
        await outbox.deliver_due()
        await hub.hub.tasks.wait_idle()
    raise AssertionError(f"message {message_id} is {message.delivery_status}, not {status}")


async def customer_of(hub: RunningHub, channel: str, address: str) -> Customer:
    """The customer the hub links to `address` on `channel` (one person across channels)."""
    async with hub.hub.database.read() as session:
        customer_id = await session.scalar(
            select(Identity.customer_id).where(
                Identity.channel == channel, Identity.address == address
            )
        )
        assert customer_id is not None, (channel, address)
        customer = await session.get(Customer, customer_id)
    assert customer is not None
    return customer


async def committed_reply(hub: RunningHub, conversation_id: int, text: str) -> Message:
    """A bot's SMS reply committed to the conversation but not handed to the outbox.

    What a crash between the reply's commit and its outbox row leaves behind, or a reply a
    test enqueues by hand.
    """
    async with hub.hub.database.write() as session:
        message = Message(
            conversation_id=conversation_id,
            channel="sms",
            direction=Direction.OUTBOUND,
            author=Author.BOT,
            text=text,
            sources=[],
            media_urls=[],
            meta={},
            delivery_status=DeliveryStatus.PENDING,
            created_at=utcnow(),
        )
        session.add(message)
    return message
