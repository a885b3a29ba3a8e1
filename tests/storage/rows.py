"""Rows that storage-level tests start from."""

from __future__ import annotations

from hub.storage.database import Database
from hub.storage.models import Conversation, Customer, Identity


async def customer_with_conversation(
    db: Database, channel: str = "sms", address: str = "+8613800138000"
) -> tuple[int, int]:
    """A customer with one identity on `channel` and one open conversation there: their ids."""
    async with db.write() as session:
        customer = Customer(
            display_name="Test", risk_tags=["fraud_watch"], profile={"city": "上海"}
        )
        session.add(customer)
        await session.flush()
        identity = Identity(customer_id=customer.id, channel=channel, address=address)
        session.add(identity)
        await session.flush()
        conversation = Conversation(
            customer_id=customer.id, identity_id=identity.id, channel=channel
        )
        session.add(conversation)
        await session.flush()
        return customer.id, conversation.id
