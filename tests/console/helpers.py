"""What the console tests share: log in as a demo person, call the API, lay out conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import select

from hub.clock import utcnow
from hub.domain import Author, ConversationStatus, DeliveryStatus, Direction
from hub.storage.database import Database
from hub.storage.models import Agent, AuditLog, Conversation, Customer, Identity, Message
from tests.conftest import RunningHub

# The demo staff (hub/demo_data/agents.jsonl).
PASSWORDS = {
    "agent.li": "demo-li-wealth",
    "agent.wang": "demo-wang-cards",
    "supervisor.sun": "demo-sun-supervisor",
    "editor.xu": "demo-xu-editor",
    "admin.gao": "demo-gao-admin",
}


async def call(
    hub: RunningHub,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Make one HTTP request to the running hub; return (status, JSON body)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, hub.base_url + path, json=json, headers=sent) as response,
    ):
        return response.status, await response.json(content_type=None)


async def login(hub: RunningHub, username: str) -> str:
    """Log in as a demo staff member; return the session token."""
    status, body = await call(
        hub,
        "POST",
        "/api/auth/login",
        json={"username": username, "password": PASSWORDS[username]},
    )
    assert status == 200, body
    return str(body["token"])


async def agent_id(database: Database, username: str) -> int:
    async with database.read() as session:
        found = await session.scalar(select(Agent.id).where(Agent.username == username))
    assert found is not None
    return int(found)


async def customer_id(database: Database, external_id: str) -> int:
    async with database.read() as session:
        found = await session.scalar(select(Customer.id).where(Customer.external_id == external_id))
    assert found is not None
    return int(found)


@dataclass(frozen=True)
class Seeded:
    conversation_id: int
    customer_id: int
    message_ids: tuple[int, ...]


async def seed_conversation(
    database: Database,
    *,
    external_id: str,
    channel: str,
    address: str,
    texts: tuple[str, ...] = ("我想问一下理财到期的事",),
    status: ConversationStatus = ConversationStatus.ASSIGNED,
    assigned_to: int | None = None,
    offered_to: int | None = None,
    skill: str = "wealth",
    csat_score: int | None = None,
    closed: bool = False,
) -> Seeded:
    """Lay out a conversation as the router and assignment would have left it.

    Routing and assignment are built separately; these tests are about who may read what,
    so they start from the state those steps produce.
    """
    now = utcnow()
    async with database.write() as session:
        customer = await session.scalar(select(Customer).where(Customer.external_id == external_id))
        assert customer is not None
        identity = await session.scalar(
            select(Identity).where(Identity.channel == channel, Identity.address == address)
        )
        if identity is None:
            identity = Identity(customer_id=customer.id, channel=channel, address=address)
            session.add(identity)
            await session.flush()
        conversation = Conversation(
            customer_id=customer.id,
            identity_id=identity.id,
            channel=channel,
            status=ConversationStatus.CLOSED if closed else status,
            skill=skill,
            topic="wealth_maturity",
            language="zh",
            assigned_agent_id=assigned_to,
            offered_agent_id=offered_to,
            offered_at=now if offered_to else None,
            offer_expires_at=now + timedelta(minutes=10) if offered_to else None,
            opened_at=now - timedelta(minutes=5),
            handoff_at=now - timedelta(minutes=2),
            accepted_at=now - timedelta(minutes=1) if assigned_to else None,
            closed_at=now if closed else None,
            resolution="resolved" if closed else None,
            csat_score=csat_score,
            handoff_context={"reason": "request_human", "skill": skill, "summary": "wants help"},
            last_message_at=now,
        )
        session.add(conversation)
        await session.flush()
        messages = [
            Message(
                conversation_id=conversation.id,
                channel=channel,
                direction=Direction.INBOUND,
                author=Author.CUSTOMER,
                text=text,
                sources=[],
                meta={},
                delivery_status=DeliveryStatus.RECEIVED,
            )
            for text in texts
        ]
        session.add_all(messages)
        await session.flush()
        return Seeded(conversation.id, customer.id, tuple(m.id for m in messages))


async def audit_rows(database: Database, action: str) -> list[AuditLog]:
    async with database.read() as session:
        return list(
            await session.scalars(
                select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            )
        )
