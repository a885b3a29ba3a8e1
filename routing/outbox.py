"""The outbox: replies to provider channels delivered at least once, with retries and backoff.

Replies are committed first (by the router, or by an agent's action); the gateway both
deliver through is this outbox. For a provider channel (SMS, WhatsApp, Meta, WeChat)
`deliver` writes one outbox row per message, keyed by the message's idempotency key, right
after that commit, wakes the runner and answers "queued", so the caller leaves the status
to the runner. The runner claims due rows with a lease (several hub processes or Celery
workers never send one row at the same time), hands each message to the channel registry
and records the outcome on the message — sent, or failed once the attempts are used up —
and pushes it to the console. Live-socket channels (web chat) bypass the outbox.

At least once, not exactly once: a process that dies after the provider accepted a message
but before the row is marked sent sends it again when the lease runs out. `recover` covers
the other gap, a crash between a reply's commit and its outbox row. Within one conversation
rows go out in order: a row waits while an earlier row of its conversation is pending.

Embedded default: `run()` is a task on the hub's event loop, woken by `enqueue`. Scaled mode
(hub/worker.py): the hub does not run it; `enqueue` asks Celery for a pass instead (the
`notify` hook), and a Celery task calls the same `deliver_due()` in a worker, on a schedule
and when a retry falls due.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, and_, case, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import (
    CustomerAddress,
    DeliveryResult,
    DeliveryStatus,
    Direction,
    OutboundMessage,
)
from hub.outbound import ChannelGateway
from hub.settings import OutboxSettings
from hub.storage.database import Database
from hub.storage.models import Conversation, Identity, Message, OutboxEntry
from hub.tasks import wait_for_event
from routing.events import MessageStatusChanged, RoutingEvent
from routing.transcripts import to_outbound

log = logging.getLogger(__name__)

PENDING, SENT, FAILED = "pending", "sent", "failed"  # outbox row states
BATCH = 50  # rows claimed per pass
CONCURRENCY = 8  # sends in flight at once (different conversations)
ERROR_BACKOFF_SECONDS = 1.0
RECOVER_WINDOW = timedelta(hours=24)

Publish = Callable[[Sequence[RoutingEvent]], Awaitable[None]]
Notify = Callable[[], Awaitable[None]]


class ChannelPort(ChannelGateway, Protocol):
    """The channel registry as the outbox sees it."""

    def delivers_directly(self, channel: str) -> bool:
        """Say whether `channel` skips the outbox (a live socket, or no adapter at all)."""
        ...


def idempotency_key(message_id: int) -> str:
    """The key that makes one message one outbox row, however often it is enqueued."""
    return f"message:{message_id}"


async def _no_publish(_: Sequence[RoutingEvent]) -> None:
    return None


class Outbox:
    """The router's and routing engine's `ChannelGateway`, plus the runner that empties it."""

    def __init__(
        self,
        database: Database,
        channels: ChannelPort,
        settings: OutboxSettings,
        *,
        publish: Publish | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.database = database
        self.channels = channels
        self.settings = settings
        # Where status changes go (the routing engine's console feed); set by the wiring.
        self.publish: Publish = publish or _no_publish
        # Who is told a row was written: the in-process runner by default; in scaled mode
        # the wiring sends a Celery task instead. It must not raise: the row is committed,
        # and the next periodic pass sends it whatever happened to the notice.
        self.notify: Notify = notify or self._wake_runner
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENCY)

    # -- the gateway ----------------------------------------------------------------------------

    async def deliver(self, message: OutboundMessage) -> DeliveryResult:
        """Queue a committed message for its provider channel, or deliver a live one now."""
        if message.internal or self.channels.delivers_directly(message.address.channel):
            return await self.channels.deliver(message)  # the registry refuses internal notes
        await self.enqueue(message)
        return DeliveryResult(ok=True, queued=True)

    async def typing(
        self, address: CustomerAddress, conversation_id: int, author: str, typing: bool
    ) -> None:
        await self.channels.typing(address, conversation_id, author, typing)

    async def enqueue(self, message: OutboundMessage) -> None:
        """Write the message's outbox row (once per idempotency key) and notify the runner."""
        key = idempotency_key(message.message_id)
        try:
            async with self.database.write() as session:
                found = await session.scalar(
                    select(OutboxEntry.id).where(OutboxEntry.idempotency_key == key)
                )
                if found is None:
                    session.add(
                        OutboxEntry(
                            idempotency_key=key,
                            message_id=message.message_id,
                            conversation_id=message.conversation_id,
                            channel=message.address.channel,
                            address=message.address.address,
                            status=PENDING,
                            attempts=0,
                            next_attempt_at=utcnow(),
                        )
                    )
        except IntegrityError:
            log.debug("message %s was queued concurrently", message.message_id)
        await self.notify()

    def wake(self) -> None:
        """Ask the in-process runner to look for due rows now."""
        self._wake.set()

    async def _wake_runner(self) -> None:
        self.wake()

    # -- the runner -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver due rows whenever woken, when a retry falls due, and every poll interval."""
        while True:
            self._wake.clear()
            try:
                delay = await self.deliver_due()
            except Exception:
                log.exception("outbox pass failed; trying again shortly")
                delay = ERROR_BACKOFF_SECONDS
            timeout = self.settings.poll_seconds if delay is None else delay
            await wait_for_event(self._wake, min(timeout, self.settings.poll_seconds))

    async def deliver_due(self, now: datetime | None = None) -> float | None:
        """Send every row that is due; return seconds until the next one falls due, if any.

        This is the task function: the in-process runner calls it, and so would Celery.
        `now` lets tests play the clock forward instead of sleeping.
        """
        while True:
            at = now or utcnow()
            due = await self._due(at)
            if not due:
                break
            outcomes = await asyncio.gather(
                *(self._attempt(entry_id, at) for entry_id in due), return_exceptions=True
            )
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            for error in errors:
                log.error("outbox: an attempt failed", exc_info=error)
            if errors:
                break  # the database is likely unwell: let the caller back off
        return await self._seconds_to_next(now or utcnow())

    async def _due(self, now: datetime) -> list[int]:
        """Rows to send now: the oldest pending row of each conversation, due and unclaimed."""
        async with self.database.read() as session:
            ids = await session.scalars(
                select(OutboxEntry.id)
                .where(
                    OutboxEntry.id.in_(_heads()),
                    OutboxEntry.next_attempt_at <= now,
                    _unclaimed(now),
                )
                .order_by(OutboxEntry.id)
                .limit(BATCH)
            )
            return list(ids)

    async def _seconds_to_next(self, now: datetime) -> float | None:
        # Only heads can be sent next, and a claimed row not before its lease runs out:
        # counting the others would spin the runner while a head waits out its backoff.
        ready_at = case(
            (OutboxEntry.locked_until > OutboxEntry.next_attempt_at, OutboxEntry.locked_until),
            else_=OutboxEntry.next_attempt_at,
        )
        async with self.database.read() as session:
            soonest: datetime | None = await session.scalar(
                select(func.min(ready_at)).where(OutboxEntry.id.in_(_heads()))
            )
        if soonest is None:
            return None
        return max((soonest - now).total_seconds(), 0.0)

    async def _attempt(self, entry_id: int, now: datetime) -> None:
        async with self._slots:
            outbound = await self._claim(entry_id, now)
            if outbound is None:
                return  # another runner took it
            result = await self.channels.deliver(outbound)
            events = await self._record(entry_id, result, now)
        await self.publish(events)

    async def _claim(self, entry_id: int, now: datetime) -> OutboundMessage | None:
        """Take a lease on the row (one attempt); return the message to send."""
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.database.write() as session:
            claimed = cast(
                CursorResult[Any],
                await session.execute(
                    update(OutboxEntry)
                    .where(
                        OutboxEntry.id == entry_id,
                        OutboxEntry.status == PENDING,
                        _unclaimed(now),
                    )
                    .values(locked_until=lease, attempts=OutboxEntry.attempts + 1)
                ),
            )
            if claimed.rowcount != 1:
                return None
            entry = await session.get(OutboxEntry, entry_id)
            assert entry is not None
            message = await session.get(Message, entry.message_id)
            assert message is not None  # foreign key
            return to_outbound(message, CustomerAddress(entry.channel, entry.address))

    async def _record(
        self, entry_id: int, result: DeliveryResult, now: datetime
    ) -> list[RoutingEvent]:
        """Store the attempt's outcome on the row and the message; return what the console sees."""
        async with self.database.write() as session:
            entry = await session.get(OutboxEntry, entry_id)
            assert entry is not None
            message = await session.get(Message, entry.message_id)
            assert message is not None
            entry.locked_until = None
            if result.ok:
                entry.status, entry.finished_at, entry.last_error = SENT, now, None
                # A delivery receipt may have overtaken us; never move a message backwards.
                if message.delivery_status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED):
                    message.delivery_status = DeliveryStatus.SENT
                message.provider_message_id = result.provider_message_id
                message.delivery_error = None
            elif result.retryable and entry.attempts < self.settings.max_attempts:
                entry.last_error = result.error
                entry.next_attempt_at = now + timedelta(seconds=self._backoff(entry.attempts))
                message.delivery_error = (
                    f"attempt {entry.attempts} of {self.settings.max_attempts} failed, "
                    f"retrying: {result.error}"
                )
                log.info("outbox: message %s %s", message.id, message.delivery_error)
            else:
                entry.status, entry.finished_at, entry.last_error = FAILED, now, result.error
                message.delivery_status = DeliveryStatus.FAILED
                message.delivery_error = result.error
                log.warning(
                    "outbox: message %s to %s failed after %d attempts: %s",
                    message.id,
                    entry.channel,
                    entry.attempts,
                    result.error,
                )
            return [
                MessageStatusChanged(
                    message.conversation_id,
                    message.id,
                    message.delivery_status,
                    message.delivery_error,
                )
            ]

    def _backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter, so retries after an outage do not arrive at once."""
        base = self.settings.backoff_seconds * 2 ** (attempts - 1)
        return float(min(base, self.settings.backoff_max_seconds) * random.uniform(0.8, 1.2))

    # -- recovery -------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Queue provider-channel replies a crash left committed but without an outbox row."""
        since = utcnow() - RECOVER_WINDOW
        async with self.database.read() as session:
            rows = (
                await session.execute(
                    select(Message, Identity.channel, Identity.address)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .join(Identity, Identity.id == Conversation.identity_id)
                    .where(
                        Message.direction == Direction.OUTBOUND,
                        Message.delivery_status == DeliveryStatus.PENDING,
                        Message.internal.is_(False),
                        Message.created_at >= since,
                        ~exists().where(OutboxEntry.message_id == Message.id),
                    )
                    .order_by(Message.id)
                )
            ).all()
        queued = 0
        for message, channel, address in rows:
            if self.channels.delivers_directly(channel):
                continue
            await self.enqueue(to_outbound(message, CustomerAddress(channel, address)))
            queued += 1
        if queued:
            log.info("outbox: queued %d replies a crash left undelivered", queued)
        return queued


def _heads() -> Any:
    """The oldest pending row of each conversation: the only ones that may be sent now."""
    return (
        select(func.min(OutboxEntry.id))
        .where(OutboxEntry.status == PENDING)
        .group_by(OutboxEntry.conversation_id)
    )


def _unclaimed(now: datetime) -> Any:
    return or_(OutboxEntry.locked_until.is_(None), OutboxEntry.locked_until <= now)


async def delivery_counts(
    session: AsyncSession, since: datetime, until: datetime
) -> dict[str, dict[str, int]]:
    """Per channel: outbound messages by delivery status, and outbox retries, in the window."""
    counts: dict[str, dict[str, int]] = defaultdict(_zero_counts)
    by_status = await session.execute(
        select(Message.channel, Message.delivery_status, func.count())
        .where(
            Message.direction == Direction.OUTBOUND,
            Message.internal.is_(False),
            Message.created_at >= since,
            Message.created_at < until,
        )
        .group_by(Message.channel, Message.delivery_status)
    )
    for channel, status, count in by_status:
        counts[channel][status] = int(count)
    retries = await session.execute(
        select(OutboxEntry.channel, func.sum(OutboxEntry.attempts - 1))
        .where(
            and_(OutboxEntry.created_at >= since, OutboxEntry.created_at < until),
            OutboxEntry.attempts > 1,
        )
        .group_by(OutboxEntry.channel)
    )
    for channel, extra in retries:
        counts[channel]["retries"] = int(extra or 0)
    return dict(sorted(counts.items()))


def _zero_counts() -> dict[str, int]:
    outbound = (DeliveryStatus.PENDING, DeliveryStatus.SENT, DeliveryStatus.DELIVERED)
    return {status.value: 0 for status in (*outbound, DeliveryStatus.FAILED)} | {"retries": 0}
