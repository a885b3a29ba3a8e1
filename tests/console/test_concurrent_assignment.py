"""Concurrent assignment never gives one conversation to two agents, nor an agent too many.

30 agents and 80 queued conversations; several "hub processes" (separate engines and
connection pools on PostgreSQL; one process with its single writer on SQLite) run routing
passes at the same moment, then every agent grabs at once — its own offers and everyone
else's. The database must end with each conversation offered once, accepted once, by the
agent it was offered to, and no agent above their capacity.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest_asyncio
from sqlalchemy import func, select

from hub.clock import utcnow
from hub.domain import ConversationStatus
from hub.errors import Conflict
from hub.settings import RoutingTimings
from hub.storage.database import Database
from hub.storage.models import Agent, Conversation, ConversationEvent
from routing import assignment
from routing.events import OfferMade, RoutingEvent
from tests.console.routing_seed import make_agent, queue_conversation

AGENTS = 30
CONVERSATIONS = 80
PROCESSES = 3
PASSES_PER_PROCESS = 3
# Transactions in flight per process, like a hub's pool (the test machine's PostgreSQL is
# shared, so the test keeps well inside its connection limit).
IN_FLIGHT = 8
# Long offer and heartbeat windows: this test is about races, and a slow CI machine must not
# expire an offer or an agent's heartbeat while everyone grabs.
TIMINGS = RoutingTimings(offer_seconds=600, heartbeat_timeout_seconds=3600)


@pytest_asyncio.fixture
async def hubs(
    database: Database, database_url: str, database_kind: str
) -> AsyncIterator[list[Database]]:
    """One database handle per simulated hub process (PostgreSQL); SQLite has one process."""
    extra = (
        [Database(database_url) for _ in range(PROCESSES - 1)] if database_kind != "sqlite" else []
    )
    yield [database, *extra]
    for handle in extra:
        await handle.dispose()


async def route_everywhere(hubs: Sequence[Database]) -> list[OfferMade]:
    """Every process runs several routing passes, all at the same moment."""
    offers: list[OfferMade] = []

    async def collect(events: Sequence[RoutingEvent]) -> None:
        offers.extend(e for e in events if isinstance(e, OfferMade))

    await asyncio.gather(
        *(
            assignment.route_waiting(hubs[i % len(hubs)], utcnow(), TIMINGS, collect)
            for i in range(len(hubs) * PASSES_PER_PROCESS)
        )
    )
    return offers


async def grab(database: Database, agent_id: int, conversation_id: int) -> bool:
    """Try to accept; True when this agent got the conversation."""
    try:
        async with database.write() as session:
            conversation = await assignment.lock_conversation(session, conversation_id)
            assert conversation is not None
            await assignment.accept(session, conversation, agent_id, utcnow())
    except Conflict:
        return False
    return True


async def test_many_agents_at_once_never_share_a_conversation(hubs: list[Database]) -> None:
    database = hubs[0]
    capacity = {
        await make_agent(
            database, ("general",), capacity=1 + i % 3, idle_since=utcnow() - timedelta(seconds=i)
        ): 1 + i % 3
        for i in range(AGENTS)
    }
    queued = [await queue_conversation(database, waited=i % 40) for i in range(CONVERSATIONS)]
    slots = sum(capacity.values())  # 60: fewer than there are conversations

    offers = await route_everywhere(hubs)
    offered_to = {o.conversation_id: o.agent_id for o in offers}
    assert len(offers) == len(offered_to) == slots  # one committed offer per conversation
    per_agent = Counter(offered_to.values())
    assert all(per_agent[a] <= capacity[a] for a in capacity)

    # Everyone grabs at once: their own offers, and a handful of other people's.
    rng = random.Random(7)
    attempts = [(agent, conversation) for conversation, agent in offered_to.items()]
    for agent in capacity:
        attempts += [(agent, c) for c in rng.sample(queued, 6) if offered_to.get(c) != agent]
    rng.shuffle(attempts)
    gates = [asyncio.Semaphore(IN_FLIGHT) for _ in hubs]

    async def grab_in(process: int, agent: int, conversation: int) -> bool:
        async with gates[process]:
            return await grab(hubs[process], agent, conversation)

    results = await asyncio.gather(
        *(grab_in(i % len(hubs), a, c) for i, (a, c) in enumerate(attempts))
    )
    won = [attempt for attempt, ok in zip(attempts, results, strict=True) if ok]
    assert sorted(won) == sorted((a, c) for c, a in offered_to.items())

    # Capacity frees up while routing runs in every process again.
    finished = list(offered_to)[:20]
    async with database.write() as session:
        for conversation_id in finished:
            row = await session.get(Conversation, conversation_id)
            assert row is not None
            row.status = ConversationStatus.CLOSED
    second = await route_everywhere(hubs)
    assert len(second) == len({o.conversation_id for o in second}) == 20
    assert not {o.conversation_id for o in second} & set(offered_to)

    async with database.read() as session:
        offered_events = Counter(
            await session.scalars(
                select(ConversationEvent.conversation_id).where(ConversationEvent.kind == "offered")
            )
        )
        accepted_events = Counter(
            await session.scalars(
                select(ConversationEvent.conversation_id).where(
                    ConversationEvent.kind == "accepted"
                )
            )
        )
        loads = await assignment.agent_loads(session)
        agents = {a.id: a.max_concurrent for a in await session.scalars(select(Agent))}
        waiting = await session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.status == "queued", Conversation.offered_agent_id.is_(None))
        )
    assert max(offered_events.values()) == 1 and len(offered_events) == slots + 20
    assert max(accepted_events.values()) == 1 and len(accepted_events) == slots
    assert all(loads.get(a, 0) <= agents[a] for a in agents)
    assert waiting == 0
