"""Stored messages as customers get them: read back on reload, or handed to a channel."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain import Author, CustomerAddress, MessageView, OutboundMessage, Source
from hub.storage.models import Identity, Message
from routing.conversations import latest_conversation

HISTORY_LIMIT = 500


def to_outbound(message: Message, address: CustomerAddress) -> OutboundMessage:
    """The committed message as a channel sends it (router, agents' replies, the outbox)."""
    position = (message.meta or {}).get("queue_position")
    return OutboundMessage(
        message_id=message.id,
        conversation_id=message.conversation_id,
        address=address,
        author=Author(message.author),
        text=message.text,
        sources=tuple(Source(id=s["id"], title=s["title"]) for s in message.sources or []),
        handoff=message.handoff,
        queue_position=int(position) if position is not None else None,
        created_at=message.created_at,
        internal=message.internal,
    )


def view_of(message: Message) -> MessageView:
    sources = tuple(Source(id=str(s["id"]), title=str(s["title"])) for s in message.sources or [])
    position = (message.meta or {}).get("queue_position")
    return MessageView(
        id=message.id,
        conversation_id=message.conversation_id,
        author=message.author,
        text=message.text,
        sources=sources,
        handoff=message.handoff,
        queue_position=int(position) if position is not None else None,
        created_at=message.created_at,
        channel_message_id=message.channel_message_id,
        delivery_status=message.delivery_status,
    )


async def customer_history(session: AsyncSession, address: CustomerAddress) -> list[MessageView]:
    """The messages of the address's latest conversation, oldest first."""
    identity = await session.scalar(
        select(Identity).where(
            Identity.channel == address.channel, Identity.address == address.address
        )
    )
    if identity is None:
        return []
    conversation = await latest_conversation(session, identity.id)
    if conversation is None:
        return []
    rows = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.internal.is_(False))
        .order_by(Message.id.desc())
        .limit(HISTORY_LIMIT)
    )
    return [view_of(m) for m in reversed(list(rows))]
