"""Open a conversation on a customer's first message, or continue the one in progress."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import ConversationStatus, CustomerAddress
from hub.storage.models import Conversation, Customer, Identity

# A bot conversation nobody has touched for this long is over: the next message is a new
# contact (for FCR a new contact on the same topic within 7 days counts against resolution).
BOT_IDLE_TIMEOUT = timedelta(minutes=30)


async def open_or_continue(
    session: AsyncSession,
    customer: Customer,
    identity: Identity,
    language: str,
) -> Conversation:
    """Return the identity's open conversation, opening a new one when there is none."""
    now = utcnow()
    current = await current_conversation(session, identity.id)
    if (
        current is not None
        and current.status == ConversationStatus.BOT
        and now - current.last_message_at > BOT_IDLE_TIMEOUT
    ):
        current.status = ConversationStatus.CLOSED
        current.closed_at = now
        current.resolution = current.resolution or "bot_idle"
        current = None
    if current is not None:
        current.last_message_at = now
        return current
    conversation = Conversation(
        customer_id=customer.id,
        identity_id=identity.id,
        channel=identity.channel,
        status=ConversationStatus.BOT,
        language=language,
        verified=identity.verified,
        opened_at=now,
        last_message_at=now,
    )
    session.add(conversation)
    await session.flush()
    return conversation


# Built once, as routing/identity.py's _IDENTITY_AND_CUSTOMER: the general path runs it.
_CURRENT_CONVERSATION = (
    select(Conversation)
    .where(
        Conversation.identity_id == bindparam("identity_id"),
        Conversation.status != ConversationStatus.CLOSED,
    )
    .order_by(Conversation.id.desc())
    .limit(1)
)


async def current_conversation(session: AsyncSession, identity_id: int) -> Conversation | None:
    """The identity's conversation that is not closed, if any."""
    result: Conversation | None = await session.scalar(
        _CURRENT_CONVERSATION, {"identity_id": identity_id}
    )
    return result


async def current_conversation_at(
    session: AsyncSession, address: CustomerAddress
) -> Conversation | None:
    """The open conversation of the contact at exactly this (channel, address), if any."""
    result: Conversation | None = await session.scalar(
        select(Conversation)
        .join(Identity, Identity.id == Conversation.identity_id)
        .where(
            Identity.channel == address.channel,
            Identity.address == address.address,
            Conversation.status != ConversationStatus.CLOSED,
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    return result


async def latest_conversation(session: AsyncSession, identity_id: int) -> Conversation | None:
    """The identity's most recent conversation, open or closed (what a reloaded chat shows)."""
    result: Conversation | None = await session.scalar(
        select(Conversation)
        .where(Conversation.identity_id == identity_id)
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    return result
