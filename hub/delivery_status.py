"""Delivery receipts from providers (sent, delivered, read, failed) applied to stored messages.

Providers report a message's fate by their own id, in any order and sometimes twice, so a
receipt only moves a message forward: a late "sent" never hides "delivered", and "failed"
never overrides a message the customer already has.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hub.domain import DeliveryStatus, Direction
from hub.storage.database import Database
from hub.storage.models import Message

_RANK: dict[str, int] = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.FAILED: 1,  # a failed send may still be retried and then delivered
    DeliveryStatus.DELIVERED: 2,
}


@dataclass(frozen=True)
class StatusChange:
    """A message whose delivery status a receipt changed."""

    conversation_id: int
    message_id: int
    delivery_status: str
    delivery_error: str | None


async def record_provider_status(
    database: Database,
    channel: str,
    provider_message_id: str,
    status: DeliveryStatus,
    error: str | None = None,
) -> StatusChange | None:
    """Apply one provider receipt; return the change, or None when nothing changed."""
    async with database.write() as session:
        message = await session.scalar(
            select(Message).where(
                Message.channel == channel,
                Message.provider_message_id == provider_message_id,
                Message.direction == Direction.OUTBOUND,
            )
        )
        if message is None or not _moves_forward(message.delivery_status, status):
            return None
        message.delivery_status = status
        message.delivery_error = error if status == DeliveryStatus.FAILED else None
        return StatusChange(message.conversation_id, message.id, status, message.delivery_error)


def _moves_forward(current: str, new: DeliveryStatus) -> bool:
    if current == new:
        return False
    if new == DeliveryStatus.FAILED:
        return current != DeliveryStatus.DELIVERED
    return _RANK.get(new, 0) > _RANK.get(current, 0)
