"""Store a message from a contact the hub knows, in a conversation that goes on.

Nearly every message is one: the same visitor, phone or account writing again, with nothing
about who they are changing. That case costs three prebuilt Core statements (the contact and
its open conversation in one read, the conversation touched, the message inserted; see
`routing/turn_sql.py`) instead of the ORM's loads and flush, about 0.5 ms of the event loop's
CPU less per message (docs/benchmarks.md). Everything else — a first contact, a verification
to link or lapse, a customer without a language yet, a bot conversation gone idle — returns
None here, and the router takes the general path (`routing.identity.identify`,
`routing.conversations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain import (
    Author,
    ConversationStatus,
    CustomerAddress,
    DeliveryStatus,
    Direction,
    InboundMessage,
    Receipt,
)
from routing import turn_sql
from routing.conversations import BOT_IDLE_TIMEOUT
from routing.identity import LAST_SEEN_RESOLUTION


@dataclass(frozen=True)
class _Contact:
    identity_id: int
    customer_id: int
    verified: bool
    last_seen_at: datetime | None
    language: str | None
    external_id: str | None
    conversation_id: int | None
    status: str | None
    last_message_at: datetime | None


async def continue_conversation(
    session: AsyncSession, inbound: InboundMessage, address: CustomerAddress, now: datetime
) -> Receipt | None:
    """Store `inbound` in its contact's open conversation, or return None (general path).

    `address` is the sender's address as identities store it (normalised).
    """
    row = (
        await session.execute(
            turn_sql.CONTACT, {"channel": address.channel, "address": address.address}
        )
    ).first()
    if row is None:
        return None  # a first contact
    contact = _Contact(*row)
    if not _unchanged(contact, inbound, now):
        return None
    assert contact.conversation_id is not None  # _unchanged checked it
    await session.execute(
        turn_sql.TOUCH_CONVERSATION,
        {
            "conversation_id": contact.conversation_id,
            "now": now,
            "identity_verified": contact.verified,
        },
    )
    last_seen = contact.last_seen_at
    if last_seen is None or now - last_seen >= LAST_SEEN_RESOLUTION:
        await session.execute(
            turn_sql.TOUCH_IDENTITY, {"identity_id": contact.identity_id, "now": now}
        )
    message_id = (
        await session.execute(
            turn_sql.INSERT_MESSAGE,
            {
                "conversation_id": contact.conversation_id,
                "channel": inbound.address.channel,
                "channel_message_id": inbound.channel_message_id,
                "direction": Direction.INBOUND,
                "author": Author.CUSTOMER,
                "text": inbound.text,
                "media_urls": list(inbound.media_urls),
                "sources": [],
                "meta": {},
                "handoff": False,
                "internal": False,
                "delivery_status": DeliveryStatus.RECEIVED,
                "created_at": inbound.received_at or now,
            },
        )
    ).scalar_one()
    return Receipt(
        message_id=message_id,
        conversation_id=contact.conversation_id,
        customer_id=contact.customer_id,
        duplicate=False,
    )


def _unchanged(contact: _Contact, inbound: InboundMessage, now: datetime) -> bool:
    """Whether nothing about the contact changes with this message but its last activity."""
    if inbound.verified is None:
        # An anonymous sender on an identity verified earlier (an OTP that may have lapsed)
        # takes the general path, which checks the lapse.
        identity_as_claimed = not contact.verified
    else:
        # The firm's claim names the customer this identity is already verified for.
        identity_as_claimed = (
            contact.verified and contact.external_id == inbound.verified.customer_id
        )
    if not identity_as_claimed or contact.language is None:
        return False
    if contact.conversation_id is None or contact.last_message_at is None:
        return False  # no open conversation: one is opened on the general path
    idle = now - contact.last_message_at > BOT_IDLE_TIMEOUT
    return not (contact.status == ConversationStatus.BOT and idle)
