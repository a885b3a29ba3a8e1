"""Queue timers and the supervisors' view: SLA breaches, overflow, abandonment, the wallboard.

SLA: a handoff not accepted within `sla_seconds` (30 s) is marked once (`sla_breached_at`)
and alerts supervisors. Overflow: a conversation waiting longer than `overflow_seconds` in
its queue may also go to agents with the `general` skill. Abandonment: a queued customer
who leaves closes the conversation as `abandoned`. Each check selects its rows with
`FOR UPDATE SKIP LOCKED`, so several hub processes never mark one conversation twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain import ConversationStatus, CustomerAddress, Skill
from hub.settings import RoutingTimings
from hub.storage.database import Database
from hub.storage.models import Agent, Conversation, ConversationEvent, Identity
from routing.assignment import HANDLING_ROLES, agent_loads, record, withdraw_offer
from routing.conversations import current_conversation
from routing.events import ConversationClosed, QueueChanged, RoutingEvent, SlaBreached
from routing.metrics import ABANDONED, compute_metrics, sla_by_skill

# A conversation re-enters its queue on these steps; overflow counts from the latest.
REQUEUE_KINDS = ("requeued", "transferred")


def queued_since() -> ColumnElement[datetime]:
    """SQL: when the conversation last entered its queue (handoff, requeue or transfer)."""
    last_requeue = (
        select(func.max(ConversationEvent.at))
        .where(
            ConversationEvent.conversation_id == Conversation.id,
            ConversationEvent.kind.in_(REQUEUE_KINDS),
        )
        .correlate(Conversation)
        .scalar_subquery()
    )
    return func.coalesce(last_requeue, Conversation.handoff_at)


async def mark_sla_breaches(
    database: Database, now: datetime, timings: RoutingTimings
) -> list[RoutingEvent]:
    """Mark handoffs waiting past the SLA without an accept, once each, and alert."""
    cutoff = now - timedelta(seconds=timings.sla_seconds)
    events: list[RoutingEvent] = []
    async with database.write() as session:
        late = await session.scalars(
            select(Conversation)
            .where(
                Conversation.status == ConversationStatus.QUEUED,
                Conversation.accepted_at.is_(None),
                Conversation.sla_breached_at.is_(None),
                Conversation.handoff_at <= cutoff,
            )
            .with_for_update(skip_locked=True)
        )
        for conversation in late:
            assert conversation.handoff_at is not None
            waited = int((now - conversation.handoff_at).total_seconds())
            conversation.sla_breached_at = now
            record(session, conversation.id, "sla_breach", now, waiting_seconds=waited)
            events.append(SlaBreached(conversation.id, conversation.skill, waited))
    return events


async def overflow_waiting(
    database: Database, now: datetime, timings: RoutingTimings
) -> list[RoutingEvent]:
    """Open conversations waiting past the overflow time to agents with the general skill."""
    cutoff = now - timedelta(seconds=timings.overflow_seconds)
    events: list[RoutingEvent] = []
    async with database.write() as session:
        waiting = await session.scalars(
            select(Conversation)
            .where(
                Conversation.status == ConversationStatus.QUEUED,
                Conversation.overflowed_at.is_(None),
                Conversation.skill != Skill.GENERAL.value,
                queued_since() <= cutoff,
            )
            .with_for_update(skip_locked=True)
        )
        for conversation in waiting:
            conversation.overflowed_at = now
            record(session, conversation.id, "overflowed", now, from_skill=conversation.skill)
            events.append(QueueChanged(f"overflow:{conversation.id}"))
    return events


async def abandon_if_queued(
    database: Database, address: CustomerAddress, now: datetime
) -> list[RoutingEvent]:
    """Close the address's conversation as abandoned if it is still waiting for an agent."""
    async with database.write() as session:
        identity_id = await session.scalar(
            select(Identity.id).where(
                Identity.channel == address.channel, Identity.address == address.address
            )
        )
        if identity_id is None:
            return []
        current = await current_conversation(session, identity_id)
        if current is None or current.status != ConversationStatus.QUEUED:
            return []
        conversation = await session.scalar(
            select(Conversation)
            .where(Conversation.id == current.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if conversation is None or conversation.status != ConversationStatus.QUEUED:
            return []
        offered_to = conversation.offered_agent_id
        events = withdraw_offer(session, conversation, now, "abandoned")
        conversation.status = ConversationStatus.CLOSED
        conversation.closed_at = now
        conversation.resolution = ABANDONED
        waited = (
            int((now - conversation.handoff_at).total_seconds())
            if conversation.handoff_at
            else None
        )
        record(session, conversation.id, "abandoned", now, waited_seconds=waited)
        events.append(ConversationClosed(conversation.id, offered_to, ABANDONED))
        events.append(QueueChanged(f"abandoned:{conversation.id}"))
    return events


# -- the wallboard ------------------------------------------------------------------------------


def local_midnight(now: datetime) -> datetime:
    """The start of today in the hub's local time zone ("today" on the wallboard)."""
    local = now.astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def wallboard(session: AsyncSession, now: datetime) -> dict[str, Any]:
    """The supervisors' live view: queues, agents and today's metrics (contract shape)."""
    since = local_midnight(now)
    agents = await handling_staff(session)
    return {
        "at": now.isoformat(),
        "queues": await _queues(session, now, since, agents),
        "agents": await agent_board(session, agents),
        "today": await compute_metrics(session, since, now),
    }


async def handling_staff(session: AsyncSession) -> list[Agent]:
    """The active staff who take conversations: agents, and supervisors/admins with skills."""
    staff = await session.scalars(
        select(Agent)
        .where(Agent.active.is_(True), Agent.role.in_(HANDLING_ROLES))
        .order_by(Agent.id)
    )
    return [a for a in staff if a.role == "agent" or a.skills]


async def _queues(
    session: AsyncSession, now: datetime, since: datetime, agents: list[Agent]
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Conversation.skill, Conversation.offered_agent_id, queued_since()).where(
            Conversation.status == ConversationStatus.QUEUED
        )
    )
    skills = {s.value for s in Skill}
    for agent in agents:
        skills.update(str(s) for s in agent.skills or ())
    stats: dict[str, dict[str, Any]] = {}
    for skill, offered_to, entered in rows:
        name = skill or Skill.GENERAL.value
        skills.add(name)
        entry = stats.setdefault(name, {"waiting": 0, "longest": 0, "offered": 0})
        entry["waiting"] += 1
        entry["offered"] += offered_to is not None
        if entered is not None:
            entry["longest"] = max(entry["longest"], int((now - entered).total_seconds()))
    sla = await sla_by_skill(session, since, now)
    return [
        {
            "skill": name,
            "waiting": stats.get(name, {}).get("waiting", 0),
            "longest_wait_seconds": stats.get(name, {}).get("longest", 0),
            "sla_30s_today": sla.get(name),
            "offered": stats.get(name, {}).get("offered", 0),
        }
        for name in sorted(skills)
    ]


async def agent_board(session: AsyncSession, agents: list[Agent]) -> list[dict[str, Any]]:
    """Presence, load and capacity of each of `agents` (the wallboard's `agents` rows)."""
    held: dict[int, int] = {}
    rows = await session.execute(
        select(Conversation.assigned_agent_id, func.count())
        .where(Conversation.status == ConversationStatus.ASSIGNED)
        .group_by(Conversation.assigned_agent_id)
    )
    for agent_id, count in rows:
        if agent_id is not None:
            held[agent_id] = int(count)
    loads = await agent_loads(session)
    return [
        {
            "id": a.id,
            "display_name": a.display_name,
            "presence": a.presence,
            "skills": list(a.skills or ()),
            "active_conversations": held.get(a.id, 0),
            "offered": loads.get(a.id, 0) - held.get(a.id, 0),
            "capacity": a.max_concurrent,
            "idle_since": a.idle_since.isoformat() if a.idle_since else None,
            "last_heartbeat_at": a.last_heartbeat_at.isoformat() if a.last_heartbeat_at else None,
        }
        for a in agents
    ]
