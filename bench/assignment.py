"""Assignment throughput and handoff→offer latency: 200 queued conversations, 50 agents.

Prints, on SQLite and on PostgreSQL:

* assignment throughput — 50 agents (up to 5 conversations each) come on while 200 handed-off
  conversations wait: routing passes offer all 200 (skills, priority, sticky agent,
  longest idle, capacity), then every agent accepts its offers at once; assignments/s;
* the baseline, measured in the same run on the same data: the bare queue loop every
  queue starts from — 50 workers each taking `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1`
  then `UPDATE`, no skills, no policy, no capacity counting (on SQLite the same loop under
  the hub's single writer);
* handoff→offer latency — with 200 conversations already waiting in a queue nobody serves
  and 50 free agents, the routing engine's own loop running, 200 handoffs arrive (committed
  as the router commits them, then `handed_off`), one every 10 ms; p50/p99 from the commit
  to the offer being published to the console.

    .venv/bin/python bench/assignment.py [--postgres URL | --no-postgres] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
from sqlalchemy import select, text, update

from hub.clock import utcnow
from hub.domain import ConversationStatus, CustomerAddress, DeliveryResult, OutboundMessage
from hub.settings import RoutingTimings
from hub.storage.database import Database
from hub.storage.migrate import upgrade_database
from hub.storage.models import Agent, Conversation, Customer, Identity
from routing import assignment
from routing.engine import RoutingEngine
from routing.events import OfferMade, RoutingEvent

AGENTS = 50
CAPACITY = 5  # 250 places for 200 conversations: skills leave some slack unused
QUEUED = 200
SKILLS = ("wealth", "loans", "cards", "insurance", "securities", "general")
UNSERVED_SKILL = "private_banking"  # the standing backlog nobody on shift can take
HANDOFF_EVERY = 0.010
# Nothing expires or overflows during a run: the backlog must stay where nobody can take it.
TIMINGS = RoutingTimings(offer_seconds=3600, heartbeat_timeout_seconds=3600, overflow_seconds=86400)
DEFAULT_POSTGRES = os.environ.get(
    "SERVICEHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


class NoChannels:
    """Routing passes never deliver; the engine only needs something to hold."""

    async def deliver(self, message: OutboundMessage) -> DeliveryResult:
        return DeliveryResult(ok=True)

    async def typing(
        self, address: CustomerAddress, conversation_id: int, author: str, typing: bool
    ) -> None:
        return None


# -- data ---------------------------------------------------------------------------------------


async def seed(database: Database, rng: random.Random) -> tuple[list[int], list[int]]:
    """50 agents (two skills each), 200 customers; half were served today by some agent."""
    now = utcnow()
    async with database.write() as session:
        agents = [
            Agent(
                username=f"bench-agent-{i}",
                display_name=f"Agent {i}",
                role="agent",
                skills=[SKILLS[i % 6], SKILLS[(i + 1) % 6]],
                languages=["zh"],
                max_concurrent=CAPACITY,
                presence="available",
                last_heartbeat_at=now,
                idle_since=now - timedelta(seconds=rng.randint(0, 600)),
            )
            for i in range(AGENTS)
        ]
        session.add_all(agents)
        customers = [Customer(display_name=f"Customer {i}", risk_tags=[]) for i in range(QUEUED)]
        session.add_all(customers)
        await session.flush()
        identities = [
            Identity(customer_id=c.id, channel="webchat", address=f"visitor:bench-{c.id}")
            for c in customers
        ]
        session.add_all(identities)
        await session.flush()
        for customer, identity in zip(customers[::2], identities[::2], strict=True):
            session.add(  # served earlier today: the sticky rule has something to find
                Conversation(
                    customer_id=customer.id,
                    identity_id=identity.id,
                    channel="webchat",
                    status=ConversationStatus.CLOSED,
                    skill="general",
                    assigned_agent_id=rng.choice(agents).id,
                    opened_at=now - timedelta(hours=3),
                    accepted_at=now - timedelta(hours=3),
                    closed_at=now - timedelta(hours=2),
                    last_message_at=now - timedelta(hours=2),
                )
            )
        return [a.id for a in agents], [i.id for i in identities]


async def queue(
    database: Database,
    identities: Sequence[int],
    rng: random.Random,
    *,
    skill: str | None = None,
) -> list[int]:
    """Hand off one conversation per identity, as the router's handoff commit leaves them."""
    now = utcnow()
    async with database.write() as session:
        rows = []
        for n, identity_id in enumerate(identities):
            identity = await session.get(Identity, identity_id)
            assert identity is not None
            rows.append(
                Conversation(
                    customer_id=identity.customer_id,
                    identity_id=identity_id,
                    channel="webchat",
                    status=ConversationStatus.QUEUED,
                    skill=skill or SKILLS[n % 6],
                    priority=rng.choice((0, 0, 10, 20, 30)),
                    opened_at=now - timedelta(seconds=200),
                    handoff_at=now - timedelta(seconds=rng.uniform(0, 120)),
                    handoff_context={"reason": "request_human", "skill": skill or SKILLS[n % 6]},
                    last_message_at=now,
                )
            )
        session.add_all(rows)
        await session.flush()
        return [c.id for c in rows]


async def reset(database: Database) -> None:
    """Back to 200 waiting conversations and 50 free agents."""
    async with database.write() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.status != ConversationStatus.CLOSED)
            .values(
                status=ConversationStatus.QUEUED,
                assigned_agent_id=None,
                offered_agent_id=None,
                offered_at=None,
                offer_expires_at=None,
                accepted_at=None,
            )
        )
        await session.execute(update(Agent).values(last_heartbeat_at=utcnow()))
        await session.execute(text("DELETE FROM conversation_events"))


# -- measurements -------------------------------------------------------------------------------


async def hub_assignment(database: Database) -> tuple[float, float, float]:
    """Route and accept all 200; return (seconds routing, seconds accepting, assignments/s)."""
    offers: list[OfferMade] = []

    async def collect(events: Sequence[RoutingEvent]) -> None:
        offers.extend(e for e in events if isinstance(e, OfferMade))

    started = time.perf_counter()
    while True:
        before = len(offers)
        await assignment.route_waiting(database, utcnow(), TIMINGS, collect)
        if len(offers) == before:
            break
    routed = time.perf_counter()
    by_agent: dict[int, list[int]] = {}
    for offer in offers:
        by_agent.setdefault(offer.agent_id, []).append(offer.conversation_id)

    async def accept_all(agent_id: int, conversation_ids: list[int]) -> None:
        for conversation_id in conversation_ids:
            async with database.write() as session:
                conversation = await assignment.lock_conversation(session, conversation_id)
                assert conversation is not None
                await assignment.accept(session, conversation, agent_id, utcnow())

    await asyncio.gather(*(accept_all(a, c) for a, c in by_agent.items()))
    done = time.perf_counter()
    assert len(offers) == QUEUED, f"only {len(offers)} of {QUEUED} offered"
    return routed - started, done - routed, QUEUED / (done - started)


async def bare_skip_locked(database: Database, agent_ids: Sequence[int]) -> float:
    """The baseline loop: each worker takes the next row with SKIP LOCKED; assignments/s."""
    take = text(
        "SELECT id FROM conversations WHERE status = 'queued' AND assigned_agent_id IS NULL "
        "ORDER BY priority DESC, handoff_at LIMIT 1"
        + ("" if database.is_sqlite else " FOR UPDATE SKIP LOCKED")
    )
    give = text(
        "UPDATE conversations SET status = 'assigned', assigned_agent_id = :agent WHERE id = :id"
    )
    taken = 0

    async def worker(agent_id: int) -> None:
        nonlocal taken
        for _ in range(CAPACITY):
            async with database.write() as session:
                found = await session.scalar(take)
                if found is None:
                    return
                await session.execute(give, {"agent": agent_id, "id": found})
                taken += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(a) for a in agent_ids))
    elapsed = time.perf_counter() - started
    assert taken == QUEUED, f"baseline assigned {taken}"
    return taken / elapsed


async def handoff_to_offer(database: Database, identities: Sequence[int]) -> list[float]:
    """Latency from a handoff's commit to its offer being published, engine loop running."""
    published: dict[int, float] = {}
    committed: dict[int, float] = {}
    everything = asyncio.Event()

    class Stopwatch:
        async def publish(self, events: Sequence[RoutingEvent]) -> None:
            for event in events:
                if isinstance(event, OfferMade):
                    published[event.conversation_id] = time.perf_counter()
            if len(published) >= len(identities):
                everything.set()

    engine = RoutingEngine(database, NoChannels(), TIMINGS, sink=Stopwatch())
    loop = asyncio.create_task(engine.run())
    rng = random.Random(11)
    try:
        for n, identity_id in enumerate(identities):
            (conversation_id,) = await queue(database, [identity_id], rng, skill=SKILLS[n % 6])
            committed[conversation_id] = time.perf_counter()
            await engine.handed_off(conversation_id)
            await asyncio.sleep(HANDOFF_EVERY)
        await asyncio.wait_for(everything.wait(), 120)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    return sorted(published[c] - committed[c] for c in committed)


def percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


# -- runs ---------------------------------------------------------------------------------------


async def run_on(url: str, label: str) -> None:
    database = Database(url)
    await upgrade_database(database)
    rng = random.Random(3)
    try:
        agent_ids, identities = await seed(database, rng)
        await queue(database, identities, rng)
        route_s, accept_s, rate = await hub_assignment(database)
        await reset(database)
        baseline = await bare_skip_locked(database, agent_ids)
        # Latency: the 200 conversations become a backlog nobody can take; 200 new handoffs.
        async with database.write() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.status != ConversationStatus.CLOSED)
                .values(
                    status=ConversationStatus.QUEUED,
                    skill=UNSERVED_SKILL,
                    assigned_agent_id=None,
                    offered_agent_id=None,
                )
            )
            await session.execute(update(Agent).values(last_heartbeat_at=utcnow()))
        latencies = await handoff_to_offer(database, identities)
        async with database.read() as session:
            backlog = len(
                list(
                    await session.scalars(
                        select(Conversation.id).where(Conversation.skill == UNSERVED_SKILL)
                    )
                )
            )
    finally:
        await database.dispose()
    ms = [x * 1000 for x in latencies]
    print(f"\n{label}")
    print(
        f"  assignment (route + accept, {QUEUED} conversations, {AGENTS} agents): "
        f"{rate:7.1f} assignments/s  (routing {route_s:.2f} s = {QUEUED / route_s:.0f} offers/s, "
        f"accepting {accept_s:.2f} s)"
    )
    print(f"  baseline: bare SKIP LOCKED select/update loop:      {baseline:7.1f} assignments/s")
    print(
        f"  handoff→offer latency ({len(ms)} handoffs, {backlog} waiting in a backlog): "
        f"p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL of a PostgreSQL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            await run_on(f"sqlite+aiosqlite:///{folder}/bench.db", "SQLite (embedded default)")
    if args.no_postgres:
        return
    name = f"servicehub_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.postgres)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    server = args.postgres.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        await run_on(f"postgresql+asyncpg://{server}/{name}", "PostgreSQL")
    finally:
        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
