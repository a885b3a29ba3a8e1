"""Agent presence: available / away / offline, heartbeats, and the sweep for vanished agents.

Only `available` agents with a heartbeat younger than the timeout are routed to. An agent
whose console stops sending heartbeats (closed laptop, lost network) is marked offline by
the sweep, and the conversations they held go back to the queue with their priority kept,
so no customer waits on someone who is not there. A reconnect within the timeout changes
nothing: the agent keeps their conversations.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain import ConversationStatus
from hub.errors import NotFound
from hub.settings import RoutingTimings
from hub.storage.database import Database
from hub.storage.models import Agent, Conversation
from routing.assignment import lock_agent, requeue, withdraw_offer
from routing.events import QueueChanged, RoutingEvent


class Presence(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


async def set_presence(
    session: AsyncSession, agent_id: int, presence: Presence, now: datetime
) -> list[RoutingEvent]:
    """Change the agent's presence; away withdraws their offers, offline also requeues."""
    agent = await lock_agent(session, agent_id)
    if agent is None:
        raise NotFound("There is no such staff member.")
    previous = agent.presence
    agent.presence = presence.value
    agent.last_heartbeat_at = now
    if presence is Presence.AVAILABLE and previous != Presence.AVAILABLE:
        agent.idle_since = now  # waiting for work from now on
    events: list[RoutingEvent] = []
    if presence is not Presence.AVAILABLE:
        events += await _release(session, agent, now, requeue_held=presence is Presence.OFFLINE)
    if previous != presence.value:
        events.append(QueueChanged(f"presence:{agent_id}:{presence.value}"))
    return events


async def heartbeat(session: AsyncSession, agent_id: int, now: datetime) -> str:
    """Record that the agent's console is alive; return their presence."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("There is no such staff member.")
    agent.last_heartbeat_at = now
    return agent.presence


async def sweep_vanished(
    database: Database, now: datetime, timings: RoutingTimings
) -> list[RoutingEvent]:
    """Mark agents without a recent heartbeat offline and requeue what they held."""
    cutoff = now - timedelta(seconds=timings.heartbeat_timeout_seconds)
    events: list[RoutingEvent] = []
    async with database.write() as session:
        vanished = list(
            await session.scalars(
                select(Agent)
                .where(
                    Agent.presence != Presence.OFFLINE,
                    or_(Agent.last_heartbeat_at.is_(None), Agent.last_heartbeat_at < cutoff),
                )
                .with_for_update(skip_locked=True)
            )
        )
        for agent in vanished:
            agent.presence = Presence.OFFLINE.value
            events += await _release(
                session, agent, now, requeue_held=True, reason="agent_vanished"
            )
            events.append(QueueChanged(f"presence:{agent.id}:vanished"))
    return events


async def _release(
    session: AsyncSession,
    agent: Agent,
    now: datetime,
    *,
    requeue_held: bool,
    reason: str | None = None,
) -> list[RoutingEvent]:
    """Withdraw the agent's offers and, when they are gone, requeue what they hold."""
    events: list[RoutingEvent] = []
    why = reason or f"agent_{agent.presence}"
    offered = await session.scalars(
        select(Conversation)
        .where(
            Conversation.status == ConversationStatus.QUEUED,
            Conversation.offered_agent_id == agent.id,
        )
        .with_for_update()
    )
    for conversation in offered:
        events += withdraw_offer(session, conversation, now, why)
    if requeue_held:
        held = await session.scalars(
            select(Conversation)
            .where(
                Conversation.status == ConversationStatus.ASSIGNED,
                Conversation.assigned_agent_id == agent.id,
            )
            .with_for_update()
        )
        for conversation in held:
            events += requeue(session, conversation, now, why)
    return events
