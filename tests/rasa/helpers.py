"""What the Rasa tests read back from the hub's database."""

from __future__ import annotations

from sqlalchemy import select

from hub.storage.models import AuditLog, Conversation, Message
from tests.conftest import RunningHub


async def stored_messages(hub: RunningHub, conversation_id: int) -> list[Message]:
    async with hub.hub.database.read() as session:
        rows = await session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        return list(rows)


async def bots_that_answered(hub: RunningHub, conversation_id: int) -> list[str]:
    """The `meta.bot` of each bot reply, in order: "rasa" or "embedded"."""
    return [
        str(m.meta.get("bot"))
        for m in await stored_messages(hub, conversation_id)
        if m.author == "bot"
    ]


async def conversation(hub: RunningHub, conversation_id: int) -> Conversation:
    async with hub.hub.database.read() as session:
        found = await session.get(Conversation, conversation_id)
    assert found is not None
    return found


async def holdings_reads(hub: RunningHub, conversation_id: int) -> list[AuditLog]:
    async with hub.hub.database.read() as session:
        rows = await session.scalars(
            select(AuditLog).where(AuditLog.action == "customer.holdings.read")
        )
        return [r for r in rows if r.details.get("conversation_id") == conversation_id]


async def assert_nothing_lost(hub: RunningHub, conversation_id: int) -> None:
    """Every customer message was handled and answered; every reply was delivered."""
    messages = await stored_messages(hub, conversation_id)
    inbound = [m for m in messages if m.direction == "inbound"]
    outbound = [m for m in messages if m.direction == "outbound"]
    assert inbound and all(m.handled_at is not None for m in inbound)
    assert all(m.delivery_status == "sent" for m in outbound), [
        (m.text[:30], m.delivery_status) for m in outbound
    ]
    # Each inbound message is followed by at least one reply before the next one.
    authors = [m.direction for m in messages]
    for index, direction in enumerate(authors):
        if direction == "inbound":
            assert index + 1 < len(authors) and authors[index + 1] == "outbound", authors
