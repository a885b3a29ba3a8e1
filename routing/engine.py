"""The routing engine: runs routing passes and timers, and is the hook the router and channels call.

A routing pass runs at once on the events that can make an offer possible (a handoff, an
agent becoming available, capacity freed by a wrap-up or transfer) and otherwise on the
tick (`RoutingTimings.tick_seconds`), which also runs the timers: offer expiry, the
presence sweep, SLA breaches, overflow and abandonment. Every timer takes `now` as an
argument, so tests drive them deterministically with `tick(now=...)` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.clock import utcnow
from hub.domain import ConversationStatus, CustomerAddress, DeliveryStatus, OutboundMessage
from hub.outbound import ChannelGateway
from hub.settings import RoutingTimings
from hub.storage.database import Database
from hub.storage.models import Message
from hub.tasks import wait_for_event
from routing.assignment import PassReport, expire_offers, route_waiting
from routing.conversations import current_conversation_at
from routing.events import (
    CustomerTyping,
    EventSink,
    MessageAdded,
    MessageStatusChanged,
    NullSink,
    QueueChanged,
    RoutingEvent,
)
from routing.locks import KeyedLocks
from routing.presence import sweep_vanished
from routing.supervision import abandon_if_queued, mark_sla_breaches, overflow_waiting

log = logging.getLogger(__name__)

ERROR_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True)
class TickReport:
    """What one tick of the timers did (for tests and logs)."""

    events: int
    routed: PassReport


class RoutingEngine:
    """Routing passes, timers and hooks; publishes committed events to the console's sink."""

    def __init__(
        self,
        database: Database,
        gateway: ChannelGateway,
        timings: RoutingTimings,
        *,
        sink: EventSink | None = None,
        max_message_chars: int = 2000,
    ) -> None:
        self.database = database
        self.gateway = gateway
        self.timings = timings
        self.sink: EventSink = sink or NullSink()
        self.max_message_chars = max_message_chars
        self.conversation_locks = KeyedLocks()  # agent messages of one conversation keep order
        self._wake = asyncio.Event()
        # Web-chat customers whose last connection closed, and when; abandonment is decided
        # on the tick once `abandon_seconds` pass without a reconnect.
        self._departed: dict[CustomerAddress, datetime] = {}

    # -- publishing and triggering ------------------------------------------------------------

    async def publish(self, events: Sequence[RoutingEvent]) -> None:
        """Hand committed events to the console; a console failure never undoes routing."""
        if not events:
            return
        try:
            await self.sink.publish(events)
        except Exception:
            log.exception("publishing %d routing events failed", len(events))

    def trigger(self) -> None:
        """Ask for a routing pass as soon as possible (coalesced with one already pending)."""
        self._wake.set()

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Route on every trigger and run the timers every tick, until cancelled."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            await wait_for_event(self._wake, max(next_tick - loop.time(), 0.0))
            self._wake.clear()
            try:
                if loop.time() >= next_tick:
                    next_tick = loop.time() + self.timings.tick_seconds
                    await self.tick()
                else:
                    await self.route()
            except Exception:
                log.exception("routing pass failed; trying again shortly")
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)

    async def route(self, now: datetime | None = None) -> PassReport:
        """Offer waiting conversations to free agents now."""
        return await route_waiting(self.database, now or utcnow(), self.timings, self.publish)

    async def tick(self, now: datetime | None = None) -> TickReport:
        """Run every timer as of `now` (default: the clock), then a routing pass."""
        now = now or utcnow()
        events: list[RoutingEvent] = []
        events += await expire_offers(self.database, now)
        events += await sweep_vanished(self.database, now, self.timings)
        events += await mark_sla_breaches(self.database, now, self.timings)
        events += await overflow_waiting(self.database, now, self.timings)
        events += await self._abandon_departed(now)
        await self.publish(events)
        return TickReport(events=len(events), routed=await self.route(now))

    # -- hooks the router calls ----------------------------------------------------------------

    async def messages_stored(self, conversation_id: int, message_ids: Sequence[int]) -> None:
        """Show committed messages (customer's or bot's) to whoever holds or watches them."""
        await self.publish([MessageAdded(conversation_id, m) for m in message_ids])

    async def handed_off(self, conversation_id: int) -> None:
        """A conversation has just entered a queue: route it now."""
        await self.publish([QueueChanged(f"handoff:{conversation_id}")])
        self.trigger()

    # -- hooks the channels call ---------------------------------------------------------------

    async def customer_typing(self, address: CustomerAddress, typing: bool) -> None:
        """Tell the agent holding the customer's conversation that the customer is typing."""
        async with self.database.read() as session:
            current = await current_conversation_at(session, address)
        if current is None or current.status not in (
            ConversationStatus.QUEUED,
            ConversationStatus.ASSIGNED,
        ):
            return
        await self.publish([CustomerTyping(current.id, current.assigned_agent_id, typing)])

    async def customer_presence(self, address: CustomerAddress, connected: bool) -> None:
        """Note a customer's last connection closing (or a reconnect that cancels it)."""
        if connected:
            self._departed.pop(address, None)
        else:
            self._departed[address] = utcnow()

    async def _abandon_departed(self, now: datetime) -> list[RoutingEvent]:
        grace = timedelta(seconds=self.timings.abandon_seconds)
        due = [a for a, left_at in self._departed.items() if now - left_at >= grace]
        events: list[RoutingEvent] = []
        for address in due:
            self._departed.pop(address, None)
            events += await abandon_if_queued(self.database, address, now)
        return events

    # -- delivery of agent and system messages -------------------------------------------------

    async def deliver(self, outbound: Sequence[OutboundMessage]) -> dict[int, Message]:
        """Hand committed messages to the customer's channel, record and publish the outcome."""
        results = [(m, await self.gateway.deliver(m)) for m in outbound]
        stored: dict[int, Message] = {}
        async with self.database.write() as session:
            for item, result in results:
                if result.queued:
                    continue  # in the outbox: the runner records and publishes the outcome
                message = await session.get(Message, item.message_id)
                if message is None:
                    continue
                message.delivery_status = (
                    DeliveryStatus.SENT if result.ok else DeliveryStatus.FAILED
                )
                message.provider_message_id = result.provider_message_id
                message.delivery_error = result.error
                stored[message.id] = message
        await self.publish(
            [
                MessageStatusChanged(m.conversation_id, m.id, m.delivery_status, m.delivery_error)
                for m in stored.values()
            ]
        )
        return stored
