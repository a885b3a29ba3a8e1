"""Lay out agents and queued conversations directly in a database, for routing-rule tests."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from hub.clock import utcnow
from hub.domain import ConversationStatus
from hub.storage.database import Database
from hub.storage.models import Agent, Conversation, Customer, Identity

_numbers = itertools.count(1)


async def make_agent(
    database: Database,
    skills: tuple[str, ...],
    *,
    capacity: int = 3,
    presence: str = "available",
    heartbeat: datetime | None = None,
    idle_since: datetime | None = None,
    role: str = "agent",
) -> int:
    """An agent as they are once their console has connected and set a presence."""
    async with database.write() as session:
        agent = Agent(
            username=f"agent-{next(_numbers)}",
            display_name="Test Agent",
            role=role,
            skills=list(skills),
            languages=["zh"],
            max_concurrent=capacity,
            presence=presence,
            last_heartbeat_at=heartbeat or utcnow(),
            idle_since=idle_since,
        )
        session.add(agent)
        await session.flush()
        return agent.id


async def make_customer(
    database: Database, *, segment: str | None = None, risk_tags: tuple[str, ...] = ()
) -> tuple[int, int]:
    """A customer with one web-chat identity; returns (customer id, identity id)."""
    number = next(_numbers)
    async with database.write() as session:
        customer = Customer(
            display_name=f"Customer {number}", segment=segment, risk_tags=list(risk_tags)
        )
        session.add(customer)
        await session.flush()
        identity = Identity(customer_id=customer.id, channel="webchat", address=f"visitor:{number}")
        session.add(identity)
        await session.flush()
        return customer.id, identity.id


async def queue_conversation(
    database: Database,
    customer: tuple[int, int] | None = None,
    *,
    skill: str = "general",
    priority: int = 0,
    waited: float = 0.0,
    status: ConversationStatus = ConversationStatus.QUEUED,
    assigned_to: int | None = None,
    opened_ago: timedelta = timedelta(minutes=1),
) -> int:
    """A conversation the bot handed off `waited` seconds ago (or one an agent holds)."""
    customer_id, identity_id = customer or await make_customer(database)
    now = utcnow()
    async with database.write() as session:
        conversation = Conversation(
            customer_id=customer_id,
            identity_id=identity_id,
            channel="webchat",
            status=status,
            skill=skill,
            priority=priority,
            language="zh",
            assigned_agent_id=assigned_to,
            opened_at=now - opened_ago,
            handoff_at=now - timedelta(seconds=waited),
            accepted_at=now if assigned_to is not None else None,
            handoff_context={"reason": "request_human", "skill": skill},
            last_message_at=now,
        )
        session.add(conversation)
        await session.flush()
        return conversation.id
