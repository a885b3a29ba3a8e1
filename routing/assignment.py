"""Offers and assignments: which agent gets which queued conversation, safely under concurrency.

A routing pass walks the waiting conversations in priority order and offers each to the
best agent (docs/console-contract.md, "Routing rules"). Every offer is its own short
transaction that locks the conversation row and then the agent row, re-checks both under
the lock and only then writes. On PostgreSQL conversations are locked with `FOR UPDATE SKIP
LOCKED`, so several hub processes routing at once step over each other's conversations
instead of queueing behind them, and agents with a plain `FOR UPDATE` in id order, so a
process that holds conversations can always finish offering them. On SQLite the database's
single writer serialises the transactions. Outstanding offers count against an agent's
capacity, so accepting an offer can never take an agent over it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain import ConversationStatus, Skill
from hub.errors import Conflict
from hub.permissions import Permission, Role, has_permission
from hub.settings import RoutingTimings
from hub.storage.database import Database
from hub.storage.models import Agent, Conversation, ConversationEvent
from routing.events import Assigned, OfferMade, OfferWithdrawn, RoutingEvent, Unassigned

AVAILABLE = "available"
# Roles that may be offered conversations (supervisors only when they have skills).
HANDLING_ROLES = tuple(r.value for r in Role if has_permission(r, Permission.HANDLE_CONVERSATIONS))
# An accepted phone call rang at the agent's phone and nobody answered (channels/twilio_voice.py).
CALL_UNANSWERED = "call_unanswered"
# Steps after which the agent is not offered the same conversation again for a while.
REFUSALS = ("declined", "offer_expired", "offer_withdrawn", "transferred", CALL_UNANSWERED)
WAIT_POINTS_EVERY = 10.0  # seconds waited per priority point (contract: +1 per 10 s)
# Offers made per transaction: few round trips per offer, row locks held only briefly.
OFFER_BATCH = 25
MAX_REPLANS = 5

Publish = Callable[[Sequence[RoutingEvent]], Awaitable[None]]


def record(
    session: AsyncSession,
    conversation_id: int,
    kind: str,
    at: datetime,
    agent_id: int | None = None,
    **data: object,
) -> None:
    """Add one `conversation_events` row to the timeline."""
    session.add(
        ConversationEvent(
            conversation_id=conversation_id,
            kind=kind,
            at=at,
            agent_id=agent_id,
            data={k: v for k, v in data.items() if v is not None},
        )
    )


async def lock_conversation(
    session: AsyncSession, conversation_id: int, *, skip_locked: bool = False
) -> Conversation | None:
    """Load the conversation with its row locked for this transaction (fresh from the database)."""
    result: Conversation | None = await session.scalar(
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return result


async def lock_agent(
    session: AsyncSession, agent_id: int, *, skip_locked: bool = False
) -> Agent | None:
    """Load the agent with its row locked; every offer to an agent holds this lock."""
    result: Agent | None = await session.scalar(
        select(Agent)
        .where(Agent.id == agent_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return result


# -- who is free, what is waiting --------------------------------------------------------------


@dataclass
class AgentSlot:
    """A routable agent as one routing pass sees them."""

    id: int
    skills: frozenset[str]
    capacity: int
    load: int
    idle_since: datetime | None

    @property
    def free(self) -> int:
        return self.capacity - self.load

    def can_take(self, item: WaitingConversation) -> bool:
        """Say whether the agent has a skill the conversation may be routed to, and room."""
        if self.free <= 0:
            return False
        if item.skill in self.skills:
            return True
        return item.overflowed and Skill.GENERAL.value in self.skills


@dataclass(frozen=True)
class WaitingConversation:
    """A queued conversation without an outstanding offer."""

    id: int
    customer_id: int
    skill: str
    priority: int
    handoff_at: datetime
    overflowed: bool

    def effective_priority(self, now: datetime) -> float:
        """Stored priority plus one point per 10 s waited (contract, "Routing rules")."""
        waited = max((now - self.handoff_at).total_seconds(), 0.0)
        return self.priority + waited // WAIT_POINTS_EVERY


def is_fresh(agent: Agent, now: datetime, timings: RoutingTimings) -> bool:
    """Say whether the agent's last heartbeat is recent enough to route to them."""
    cutoff = now - timedelta(seconds=timings.heartbeat_timeout_seconds)
    return agent.last_heartbeat_at is not None and agent.last_heartbeat_at >= cutoff


def is_routable(agent: Agent, now: datetime, timings: RoutingTimings) -> bool:
    return (
        agent.active
        and agent.presence == AVAILABLE
        and agent.role in HANDLING_ROLES
        and agent.max_concurrent > 0
        and is_fresh(agent, now, timings)
    )


async def agent_loads(
    session: AsyncSession, agent_ids: Collection[int] | None = None
) -> dict[int, int]:
    """Held plus offered conversations per agent (all agents, or just `agent_ids`)."""
    held_by, offered_to = Conversation.assigned_agent_id, Conversation.offered_agent_id
    held = select(held_by, func.count()).where(
        Conversation.status == ConversationStatus.ASSIGNED, held_by.is_not(None)
    )
    offered = select(offered_to, func.count()).where(
        Conversation.status == ConversationStatus.QUEUED, offered_to.is_not(None)
    )
    if agent_ids is not None:
        held, offered = held.where(held_by.in_(agent_ids)), offered.where(offered_to.in_(agent_ids))
    loads: dict[int, int] = {}
    for query, column in ((held, held_by), (offered, offered_to)):
        for agent_id, count in await session.execute(query.group_by(column)):
            if agent_id is not None:
                loads[agent_id] = loads.get(agent_id, 0) + int(count)
    return loads


async def agent_load(session: AsyncSession, agent_id: int) -> int:
    """Conversations the agent holds plus offers outstanding to them."""
    return (await agent_loads(session, [agent_id])).get(agent_id, 0)


async def routable_agents(
    session: AsyncSession, now: datetime, timings: RoutingTimings
) -> dict[int, AgentSlot]:
    """Available agents with a fresh heartbeat, skills and their current load."""
    cutoff = now - timedelta(seconds=timings.heartbeat_timeout_seconds)
    agents = await session.scalars(
        select(Agent).where(
            Agent.active.is_(True),
            Agent.presence == AVAILABLE,
            Agent.role.in_(HANDLING_ROLES),
            Agent.max_concurrent > 0,
            Agent.last_heartbeat_at >= cutoff,
        )
    )
    loads = await agent_loads(session)
    return {
        a.id: AgentSlot(
            id=a.id,
            skills=frozenset(str(s) for s in a.skills or ()),
            capacity=a.max_concurrent,
            load=loads.get(a.id, 0),
            idle_since=a.idle_since,
        )
        for a in agents
    }


async def waiting_conversations(session: AsyncSession) -> list[WaitingConversation]:
    """Queued conversations that nobody has been offered yet."""
    rows = await session.execute(
        select(
            Conversation.id,
            Conversation.customer_id,
            Conversation.skill,
            Conversation.priority,
            Conversation.handoff_at,
            Conversation.opened_at,
            Conversation.overflowed_at,
        ).where(
            Conversation.status == ConversationStatus.QUEUED,
            Conversation.offered_agent_id.is_(None),
        )
    )
    return [
        WaitingConversation(
            id=cid,
            customer_id=customer_id,
            skill=skill or Skill.GENERAL.value,
            priority=priority,
            handoff_at=handoff_at or opened_at,
            overflowed=overflowed_at is not None,
        )
        for cid, customer_id, skill, priority, handoff_at, opened_at, overflowed_at in rows
    ]


def routing_order(items: Iterable[WaitingConversation], now: datetime) -> list[WaitingConversation]:
    """Highest effective priority first, then the earliest handoff (contract)."""
    return sorted(items, key=lambda c: (-c.effective_priority(now), c.handoff_at, c.id))


async def recent_agents_of_customers(
    session: AsyncSession, customer_ids: Iterable[int], now: datetime, timings: RoutingTimings
) -> dict[int, tuple[int, int]]:
    """customer id → (agent id, conversation id) of who served them most recently (sticky)."""
    ids = set(customer_ids)
    if not ids:
        return {}
    since = now - timedelta(hours=timings.sticky_hours)
    rows = await session.execute(
        select(
            Conversation.customer_id,
            Conversation.assigned_agent_id,
            Conversation.id,
            Conversation.closed_at,
            Conversation.last_message_at,
        ).where(
            Conversation.customer_id.in_(ids),
            Conversation.assigned_agent_id.is_not(None),
            Conversation.accepted_at.is_not(None),
            or_(Conversation.closed_at.is_(None), Conversation.closed_at >= since),
            Conversation.last_message_at >= since,
        )
    )
    best: dict[int, tuple[datetime, int, int]] = {}
    for customer_id, agent_id, conversation_id, closed_at, last_at in rows:
        when = closed_at or last_at
        if agent_id is None:
            continue
        if customer_id not in best or when > best[customer_id][0]:
            best[customer_id] = (when, agent_id, conversation_id)
    return {c: (agent, conv) for c, (_, agent, conv) in best.items()}


async def recent_refusals(
    session: AsyncSession, conversation_ids: Iterable[int], now: datetime, timings: RoutingTimings
) -> dict[int, set[int]]:
    """conversation id → agents who declined, let expire or passed it on lately."""
    ids = set(conversation_ids)
    if not ids:
        return {}
    since = now - timedelta(seconds=timings.reoffer_after_seconds)
    rows = await session.execute(
        select(ConversationEvent.conversation_id, ConversationEvent.agent_id).where(
            ConversationEvent.conversation_id.in_(ids),
            ConversationEvent.kind.in_(REFUSALS),
            ConversationEvent.at >= since,
            ConversationEvent.agent_id.is_not(None),
        )
    )
    refused: dict[int, set[int]] = {}
    for conversation_id, agent_id in rows:
        if agent_id is not None:
            refused.setdefault(conversation_id, set()).add(agent_id)
    return refused


def choose_agent(
    item: WaitingConversation,
    agents: Iterable[AgentSlot],
    *,
    sticky_agent_id: int | None,
    refused: set[int],
) -> AgentSlot | None:
    """The agent who served the customer lately if they can take it, else the longest idle."""
    able = [a for a in agents if a.id not in refused and a.can_take(item)]
    for agent in able:
        if agent.id == sticky_agent_id:
            return agent
    if not able:
        return None
    # Never idle (None) sorts first: they have waited since they came on.
    return min(able, key=lambda a: (a.idle_since is not None, a.idle_since or 0, a.id))


# -- one offer ----------------------------------------------------------------------------------


async def offer_batch(
    session: AsyncSession,
    pairs: Sequence[tuple[int, int]],
    now: datetime,
    timings: RoutingTimings,
) -> list[OfferMade]:
    """Make the planned (conversation, agent) offers that still hold, under row locks.

    Conversation rows another transaction holds are skipped, not waited for; agent rows are
    waited for. Every conversation and agent is re-checked under its lock, and an agent's
    load is counted under the agent's lock, which every offer to that agent takes, so
    capacity holds across processes.
    """
    if not pairs:
        return []
    conversations = {
        c.id: c
        for c in await session.scalars(
            select(Conversation)
            .where(
                Conversation.id.in_({c for c, _ in pairs}),
                Conversation.status == ConversationStatus.QUEUED,
                Conversation.offered_agent_id.is_(None),
            )
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    }
    if not conversations:
        return []  # another process is offering exactly these rows right now
    # Agent rows are waited for (briefly: offers are short transactions), in id order, never
    # skipped: a process that holds conversation rows must be able to finish offering them.
    # Skipping here let two processes each hold what the other needed, and both gave up.
    # No deadlock: conversation rows are never waited for here, and agents lock in id order.
    agents = {
        a.id: a
        for a in await session.scalars(
            select(Agent)
            .where(Agent.id.in_({a for c, a in pairs if c in conversations}))
            .order_by(Agent.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if is_routable(a, now, timings)
    }
    if not agents:
        return []
    loads = await agent_loads(session, list(agents))
    expires_at = now + timedelta(seconds=timings.offer_seconds)
    made: list[OfferMade] = []
    for conversation_id, agent_id in pairs:
        conversation, agent = conversations.get(conversation_id), agents.get(agent_id)
        if conversation is None or agent is None:
            continue
        if loads.get(agent.id, 0) >= agent.max_concurrent:
            continue
        loads[agent.id] = loads.get(agent.id, 0) + 1
        conversation.offered_agent_id = agent.id
        conversation.offered_at = now
        conversation.offer_expires_at = expires_at
        agent.idle_since = now  # they have just been given work: others are idle longer now
        record(
            session, conversation.id, "offered", now, agent.id, expires_at=expires_at.isoformat()
        )
        made.append(OfferMade(conversation.id, agent.id, expires_at))
    return made


async def offer(
    session: AsyncSession,
    conversation_id: int,
    agent_id: int,
    now: datetime,
    timings: RoutingTimings,
) -> OfferMade | None:
    """Offer one conversation to one agent if both are still free (None when not)."""
    made = await offer_batch(session, [(conversation_id, agent_id)], now, timings)
    return made[0] if made else None


@dataclass
class PassReport:
    """What one routing pass did."""

    offers: int = 0
    lost_races: int = 0  # planned offers another transaction got to first
    waiting: int = 0


async def plan_offers(
    session: AsyncSession, now: datetime, timings: RoutingTimings
) -> tuple[list[tuple[int, int]], int]:
    """Decide, from one consistent read, which waiting conversation goes to which agent."""
    agents = await routable_agents(session, now, timings)
    if not any(a.free > 0 for a in agents.values()):
        return [], 0
    waiting = routing_order(await waiting_conversations(session), now)
    sticky = await recent_agents_of_customers(
        session, {w.customer_id for w in waiting}, now, timings
    )
    refusals = await recent_refusals(session, [w.id for w in waiting], now, timings)
    plan: list[tuple[int, int]] = []
    for item in waiting:
        served = sticky.get(item.customer_id)
        agent = choose_agent(
            item,
            agents.values(),
            sticky_agent_id=served[0] if served is not None and served[1] != item.id else None,
            refused=refusals.get(item.id, set()),
        )
        if agent is None:
            continue
        agent.load += 1
        agent.idle_since = now
        plan.append((item.id, agent.id))
        if not any(a.free > 0 for a in agents.values()):
            break
    return plan, len(waiting)


async def route_waiting(
    database: Database, now: datetime, timings: RoutingTimings, publish: Publish
) -> PassReport:
    """Offer every waiting conversation that some free agent may take; publish each batch.

    The plan is made from one read and carried out in batches of `OFFER_BATCH`, each one
    transaction. When another process took some planned rows first, plan again from
    fresh state; when it took them all, it is routing this queue right now, so stop.
    """
    report = PassReport()
    for _ in range(MAX_REPLANS):
        async with database.read() as session:
            plan, report.waiting = await plan_offers(session, now, timings)
        made = 0
        for start in range(0, len(plan), OFFER_BATCH):
            async with database.write() as session:
                events = await offer_batch(session, plan[start : start + OFFER_BATCH], now, timings)
            made += len(events)
            await publish(events)
        report.offers += made
        report.lost_races += len(plan) - made
        if made == 0 or made == len(plan):
            break
    return report


# -- answering an offer --------------------------------------------------------------------------


async def accept(
    session: AsyncSession, conversation: Conversation, agent_id: int, now: datetime
) -> list[RoutingEvent]:
    """Turn the agent's live offer into an assignment (the row is locked by the caller)."""
    if (
        conversation.status != ConversationStatus.QUEUED
        or conversation.offered_agent_id != agent_id
    ):
        raise Conflict("This conversation is no longer offered to you.")
    if conversation.offer_expires_at is not None and conversation.offer_expires_at <= now:
        raise Conflict("The offer has expired; it has gone to the next agent.")
    conversation.status = ConversationStatus.ASSIGNED
    conversation.assigned_agent_id = agent_id
    _clear_offer(conversation)
    if conversation.accepted_at is None:
        conversation.accepted_at = now  # speed of answer and SLA count the first accept
    waited = (now - conversation.handoff_at).total_seconds() if conversation.handoff_at else None
    record(session, conversation.id, "accepted", now, agent_id, waited_seconds=waited)
    return [Assigned(conversation.id, agent_id, "accepted")]


async def decline(
    session: AsyncSession, conversation: Conversation, agent_id: int, now: datetime
) -> list[RoutingEvent]:
    """Give the offer back; the conversation goes to the next agent."""
    if (
        conversation.status != ConversationStatus.QUEUED
        or conversation.offered_agent_id != agent_id
    ):
        raise Conflict("This conversation is no longer offered to you.")
    _clear_offer(conversation)
    record(session, conversation.id, "declined", now, agent_id)
    return [OfferWithdrawn(conversation.id, agent_id, "declined")]


def _clear_offer(conversation: Conversation) -> None:
    conversation.offered_agent_id = None
    conversation.offered_at = None
    conversation.offer_expires_at = None


def withdraw_offer(
    session: AsyncSession, conversation: Conversation, now: datetime, reason: str
) -> list[RoutingEvent]:
    """Take back an outstanding offer (agent away, taken over, closed); no-op without one."""
    agent_id = conversation.offered_agent_id
    if agent_id is None:
        return []
    _clear_offer(conversation)
    record(session, conversation.id, "offer_withdrawn", now, agent_id, reason=reason)
    return [OfferWithdrawn(conversation.id, agent_id, reason)]


async def expire_offers(database: Database, now: datetime) -> list[RoutingEvent]:
    """Withdraw offers not accepted in time; their conversations wait for the next agent."""
    async with database.write() as session:
        rows = await session.scalars(
            select(Conversation)
            .where(
                Conversation.status == ConversationStatus.QUEUED,
                Conversation.offered_agent_id.is_not(None),
                Conversation.offer_expires_at <= now,
            )
            .with_for_update(skip_locked=True)
        )
        events: list[RoutingEvent] = []
        for conversation in rows:
            agent_id = conversation.offered_agent_id
            assert agent_id is not None
            _clear_offer(conversation)
            record(session, conversation.id, "offer_expired", now, agent_id)
            events.append(OfferWithdrawn(conversation.id, agent_id, "expired"))
    return events


def requeue(
    session: AsyncSession, conversation: Conversation, now: datetime, reason: str
) -> list[RoutingEvent]:
    """Put an assigned conversation back in its queue, keeping its priority and handoff time."""
    agent_id = conversation.assigned_agent_id
    conversation.status = ConversationStatus.QUEUED
    conversation.assigned_agent_id = None
    _clear_offer(conversation)
    record(session, conversation.id, "requeued", now, agent_id, reason=reason)
    return [Unassigned(conversation.id, agent_id, reason)] if agent_id is not None else []
