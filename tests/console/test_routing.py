"""Routing rules on a real database (SQLite and PostgreSQL): who is offered what, and when.

The rules are the contract's (docs/console-contract.md, "Routing rules"): priority then
handoff time; the agent who served the customer in the last 24 h, else the longest idle;
capacity counts offers; declines are not re-offered at once; overflow to `general`; SLA
breaches marked once; vanished agents' conversations requeued with their priority.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hub.clock import utcnow
from hub.domain import ConversationStatus, HandoffContext
from hub.errors import Conflict
from hub.settings import RoutingTimings
from hub.storage.database import Database
from hub.storage.models import Agent, Conversation, ConversationEvent, Customer
from routing import assignment, presence, queues, supervision
from routing.events import OfferMade, OfferWithdrawn, RoutingEvent, SlaBreached
from tests.console.routing_seed import make_agent, make_customer, queue_conversation

# Heartbeats stay fresh for longer than the other timers, so tests can look past those.
TIMINGS = RoutingTimings(heartbeat_timeout_seconds=600)


class Published:
    """Collects what a routing pass publishes."""

    def __init__(self) -> None:
        self.events: list[RoutingEvent] = []

    async def __call__(self, events: Sequence[RoutingEvent]) -> None:
        self.events.extend(events)

    def offers(self) -> dict[int, int]:
        """conversation id → agent id of every offer made."""
        return {e.conversation_id: e.agent_id for e in self.events if isinstance(e, OfferMade)}


async def route(database: Database, seconds_from_now: float = 0.0) -> dict[int, int]:
    published = Published()
    now = utcnow() + timedelta(seconds=seconds_from_now)
    await assignment.route_waiting(database, now, TIMINGS, published)
    return published.offers()


async def load(database: Database, conversation_id: int) -> Conversation:
    async with database.read() as session:
        found = await session.get(Conversation, conversation_id)
    assert found is not None
    return found


async def kinds(database: Database, conversation_id: int) -> list[str]:
    async with database.read() as session:
        return list(
            await session.scalars(
                select(ConversationEvent.kind)
                .where(ConversationEvent.conversation_id == conversation_id)
                .order_by(ConversationEvent.id)
            )
        )


async def answer(
    database: Database,
    conversation_id: int,
    agent_id: int,
    *,
    yes: bool,
    seconds_from_now: float = 0.0,
) -> None:
    now = utcnow() + timedelta(seconds=seconds_from_now)
    async with database.write() as session:
        conversation = await assignment.lock_conversation(session, conversation_id)
        assert conversation is not None
        if yes:
            await assignment.accept(session, conversation, agent_id, now)
        else:
            await assignment.decline(session, conversation, agent_id, now)


async def test_higher_priority_first_and_waiting_time_adds_a_point_per_ten_seconds(
    database: Database,
) -> None:
    agent = await make_agent(database, ("general",), capacity=1)
    routine = await queue_conversation(database, priority=10, waited=0)
    patient = await queue_conversation(database, priority=0, waited=200)  # 0 + 20 points
    await queue_conversation(database, priority=5, waited=10)  # 5 + 1
    assert await route(database) == {patient: agent}
    assert (await load(database, routine)).offered_agent_id is None


async def test_equal_priority_goes_by_earliest_handoff(database: Database) -> None:
    agent = await make_agent(database, ("general",), capacity=1)
    await queue_conversation(database, priority=30, waited=1)
    first = await queue_conversation(database, priority=30, waited=5)
    assert await route(database) == {first: agent}


async def test_only_agents_with_the_skill_are_offered(database: Database) -> None:
    await make_agent(database, ("cards",))
    wealth = await make_agent(database, ("wealth",))
    conversation_id = await queue_conversation(database, skill="wealth")
    assert await route(database) == {conversation_id: wealth}


async def test_the_longest_idle_agent_is_offered(database: Database) -> None:
    now = utcnow()
    await make_agent(database, ("general",), idle_since=now - timedelta(seconds=10))
    longest = await make_agent(database, ("general",), idle_since=now - timedelta(seconds=300))
    await make_agent(database, ("general",), idle_since=now - timedelta(seconds=60))
    conversation_id = await queue_conversation(database)
    assert await route(database) == {conversation_id: longest}


async def test_work_is_spread_not_piled_on_one_agent(database: Database) -> None:
    agents = [await make_agent(database, ("general",), capacity=3) for _ in range(3)]
    for _ in range(3):
        await queue_conversation(database)
    assert sorted((await route(database)).values()) == sorted(agents)


async def test_the_agent_who_served_the_customer_within_24_hours_is_preferred(
    database: Database,
) -> None:
    now = utcnow()
    idle_longer = await make_agent(database, ("general",), idle_since=now - timedelta(hours=1))
    served = await make_agent(database, ("general",), idle_since=now)
    customer = await make_customer(database)
    earlier = await queue_conversation(
        database, customer, status=ConversationStatus.ASSIGNED, assigned_to=served
    )
    async with database.write() as session:
        row = await session.get(Conversation, earlier)
        assert row is not None
        row.status, row.closed_at = ConversationStatus.CLOSED, now - timedelta(hours=2)
    again = await queue_conversation(database, customer)
    stranger = await queue_conversation(database)
    offers = await route(database)
    assert offers[again] == served
    assert offers[stranger] == idle_longer


async def test_service_more_than_24_hours_ago_is_not_sticky(database: Database) -> None:
    now = utcnow()
    idle_longer = await make_agent(database, ("general",), idle_since=now - timedelta(hours=1))
    served = await make_agent(database, ("general",), idle_since=now)
    customer = await make_customer(database)
    earlier = await queue_conversation(
        database, customer, status=ConversationStatus.ASSIGNED, assigned_to=served
    )
    async with database.write() as session:
        row = await session.get(Conversation, earlier)
        assert row is not None
        row.status = ConversationStatus.CLOSED
        row.closed_at = row.last_message_at = now - timedelta(hours=25)
    again = await queue_conversation(database, customer)
    assert await route(database) == {again: idle_longer}


async def test_outstanding_offers_count_against_capacity(database: Database) -> None:
    agent = await make_agent(database, ("general",), capacity=2)
    conversations = [await queue_conversation(database) for _ in range(4)]
    first = await route(database)
    assert len(first) == 2 and set(first.values()) == {agent}
    await answer(database, next(iter(first)), agent, yes=True)
    assert await route(database) == {}  # one held + one offered = full
    untouched = [c for c in conversations if c not in first]
    for conversation_id in untouched:
        assert (await load(database, conversation_id)).offered_agent_id is None


async def test_unavailable_and_silent_agents_are_not_offered(database: Database) -> None:
    await make_agent(database, ("general",), presence="away")
    silent_since = utcnow() - timedelta(seconds=TIMINGS.heartbeat_timeout_seconds + 1)
    await make_agent(database, ("general",), heartbeat=silent_since)
    await make_agent(database, ("general",), capacity=0)
    await make_agent(database, ("general",), role="editor")
    await queue_conversation(database)
    assert await route(database) == {}


async def test_a_declined_conversation_goes_to_the_next_agent_and_not_straight_back(
    database: Database,
) -> None:
    now = utcnow()
    first = await make_agent(database, ("general",), idle_since=now - timedelta(minutes=5))
    conversation_id = await queue_conversation(database)
    assert await route(database) == {conversation_id: first}
    await answer(database, conversation_id, first, yes=False)
    assert await route(database) == {}  # nobody else yet, and not back to who declined
    second = await make_agent(database, ("general",))
    assert await route(database) == {conversation_id: second}
    await answer(database, conversation_id, second, yes=False)
    # After `reoffer_after_seconds` the first agent may be asked again.
    assert await route(database, TIMINGS.reoffer_after_seconds + 1) == {conversation_id: first}
    assert (await kinds(database, conversation_id)).count("declined") == 2


async def test_an_unanswered_offer_expires_and_moves_on(database: Database) -> None:
    now = utcnow()
    slow = await make_agent(database, ("general",), idle_since=now - timedelta(minutes=5))
    conversation_id = await queue_conversation(database)
    assert await route(database) == {conversation_id: slow}
    assert await assignment.expire_offers(database, utcnow()) == []  # not yet
    expired = await assignment.expire_offers(database, utcnow() + timedelta(seconds=21))
    assert expired == [OfferWithdrawn(conversation_id, slow, "expired")]
    other = await make_agent(database, ("general",))
    assert await route(database, 21) == {conversation_id: other}
    assert await kinds(database, conversation_id) == ["offered", "offer_expired", "offered"]


async def test_accepting_needs_a_live_offer_to_you(database: Database) -> None:
    agent = await make_agent(database, ("general",))
    other = await make_agent(database, ("cards",))
    conversation_id = await queue_conversation(database)
    await route(database)
    with pytest.raises(Conflict, match="no longer offered"):
        await answer(database, conversation_id, other, yes=True)
    with pytest.raises(Conflict, match="expired"):
        await answer(database, conversation_id, agent, yes=True, seconds_from_now=21)
    await answer(database, conversation_id, agent, yes=True)
    accepted = await load(database, conversation_id)
    assert accepted.status == "assigned" and accepted.assigned_agent_id == agent
    assert accepted.offered_agent_id is None and accepted.accepted_at is not None
    with pytest.raises(Conflict):
        await answer(database, conversation_id, agent, yes=True)  # only once


async def test_overflow_opens_a_long_wait_to_general_agents(database: Database) -> None:
    general = await make_agent(database, ("general",))
    conversation_id = await queue_conversation(database, skill="insurance")
    assert await route(database) == {}
    assert await supervision.overflow_waiting(database, utcnow(), TIMINGS) == []
    soon = utcnow() + timedelta(seconds=TIMINGS.overflow_seconds + 1)
    assert len(await supervision.overflow_waiting(database, soon, TIMINGS)) == 1
    assert await supervision.overflow_waiting(database, soon, TIMINGS) == []  # once
    assert (await load(database, conversation_id)).overflowed_at is not None
    assert await route(database) == {conversation_id: general}


async def test_an_sla_breach_is_marked_once_and_only_before_an_accept(database: Database) -> None:
    waiting = await queue_conversation(database, waited=31)
    fresh = await queue_conversation(database, waited=5)
    agent = await make_agent(database, ("cards",))
    held = await queue_conversation(
        database, waited=40, status=ConversationStatus.ASSIGNED, assigned_to=agent
    )
    now = utcnow()
    breaches = await supervision.mark_sla_breaches(database, now, TIMINGS)
    assert len(breaches) == 1 and isinstance(breaches[0], SlaBreached)
    assert breaches[0].conversation_id == waiting and breaches[0].waiting_seconds >= 31
    assert await supervision.mark_sla_breaches(database, now, TIMINGS) == []
    assert (await load(database, fresh)).sla_breached_at is None
    assert (await load(database, held)).sla_breached_at is None
    assert await kinds(database, waiting) == ["sla_breach"]


async def test_a_vanished_agents_conversations_return_to_the_queue_with_their_priority(
    database: Database,
) -> None:
    gone = await make_agent(database, ("general",))
    held = await queue_conversation(
        database, priority=30, status=ConversationStatus.ASSIGNED, assigned_to=gone
    )
    offered = await queue_conversation(database)
    await route(database)
    assert (await load(database, offered)).offered_agent_id == gone
    assert await presence.sweep_vanished(database, utcnow(), TIMINGS) == []  # still here
    later = utcnow() + timedelta(seconds=TIMINGS.heartbeat_timeout_seconds + 1)
    await presence.sweep_vanished(database, later, TIMINGS)
    requeued = await load(database, held)
    assert requeued.status == "queued" and requeued.assigned_agent_id is None
    assert requeued.priority == 30 and requeued.accepted_at is not None
    assert (await load(database, offered)).offered_agent_id is None
    async with database.read() as session:
        agent = await session.get(Agent, gone)
    assert agent is not None and agent.presence == "offline"
    assert await kinds(database, held) == ["requeued"]
    replacement = await make_agent(database, ("general",))
    assert (await route(database))[held] == replacement


async def test_away_keeps_what_you_hold_but_gives_back_offers(database: Database) -> None:
    agent = await make_agent(database, ("general",))
    held = await queue_conversation(database, status=ConversationStatus.ASSIGNED, assigned_to=agent)
    offered = await queue_conversation(database)
    await route(database)
    async with database.write() as session:
        await presence.set_presence(session, agent, presence.Presence.AWAY, utcnow())
    assert (await load(database, held)).assigned_agent_id == agent
    assert (await load(database, offered)).offered_agent_id is None
    async with database.write() as session:
        await presence.set_presence(session, agent, presence.Presence.OFFLINE, utcnow())
    assert (await load(database, held)).status == "queued"


async def test_a_repeat_contact_within_7_days_gets_15_points(database: Database) -> None:
    customer = await make_customer(database, segment="affluent")
    await queue_conversation(database, customer, opened_ago=timedelta(days=3))
    again = await queue_conversation(database, customer, opened_ago=timedelta(seconds=5))
    first_time = await queue_conversation(database, await make_customer(database))
    handoff = HandoffContext(reason="complaint", skill="general")
    async with database.write() as session:
        for conversation_id in (again, first_time):
            row = await session.get(Conversation, conversation_id)
            assert row is not None
            owner = await session.get(Customer, row.customer_id)
            assert owner is not None
            await queues.enqueue(session, row, owner, handoff)
    assert (await load(database, again)).priority == 10 + 10 + 15  # affluent, complaint, repeat
    assert (await load(database, first_time)).priority == 10  # complaint


async def test_the_wallboard_counts_queues_and_agents(database: Database) -> None:
    agent = await make_agent(database, ("wealth", "general"), capacity=2)
    await queue_conversation(database, skill="wealth", waited=50)
    await queue_conversation(database, skill="wealth", waited=5)
    await queue_conversation(database, status=ConversationStatus.ASSIGNED, assigned_to=agent)
    await route(database)
    now = utcnow()
    async with database.read() as session:
        board = await supervision.wallboard(session, now)
        total = await session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.opened_at >= supervision.local_midnight(now))
        )
    wealth = next(q for q in board["queues"] if q["skill"] == "wealth")
    assert wealth["waiting"] == 2 and wealth["offered"] == 1
    assert wealth["longest_wait_seconds"] >= 50
    assert {q["skill"] for q in board["queues"]} >= {"general", "cards", "loans", "insurance"}
    row = next(a for a in board["agents"] if a["id"] == agent)
    assert (row["active_conversations"], row["capacity"], row["presence"]) == (1, 2, "available")
    assert board["today"]["overall"]["conversations"] == total
