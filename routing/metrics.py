"""Contact-centre metrics, computed from conversation timestamps as DESIGN.md defines them.

FRT: first customer message → first reply (bot or agent). ASA: handoff → accepted.
SLA: share of handoffs accepted within 30 s. AHT: accepted → closed. FCR: closed as resolved
with no new contact by the same customer on the same topic within 7 days on any channel.
Containment: resolved by the bot, no handoff, no repeat contact within 7 days.
Abandonment: left the queue before an agent accepted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import ConversationStatus
from hub.storage.models import Conversation
from routing.outbox import delivery_counts

SLA_TARGET = timedelta(seconds=30)
REPEAT_WINDOW = timedelta(days=7)
RESOLVED = {"resolved", "bot_resolved", "bot_idle"}
ABANDONED = "abandoned"


@dataclass(frozen=True)
class Durations:
    count: int
    mean: float | None
    p50: float | None
    p90: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Durations:
        if not seconds:
            return cls(0, None, None, None)
        ordered = sorted(seconds)
        return cls(
            count=len(ordered),
            mean=round(sum(ordered) / len(ordered), 3),
            p50=round(_percentile(ordered, 0.5), 3),
            p90=round(_percentile(ordered, 0.9), 3),
        )


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below it."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def summarise(
    conversations: Sequence[Conversation], later: Iterable[Conversation]
) -> dict[str, object]:
    """Compute every metric over `conversations`; `later` are contacts that may repeat them."""
    by_customer: dict[int, list[Conversation]] = defaultdict(list)
    for item in later:
        by_customer[item.customer_id].append(item)

    def repeated(conversation: Conversation) -> bool:
        end = conversation.closed_at or conversation.last_message_at
        return any(
            other.id != conversation.id
            and other.opened_at > conversation.opened_at
            and other.opened_at - end <= REPEAT_WINDOW
            and (conversation.topic is None or other.topic == conversation.topic)
            for other in by_customer.get(conversation.customer_id, [])
        )

    frt = [
        s for c in conversations if (s := _seconds(c.opened_at, c.first_response_at)) is not None
    ]
    handed = [c for c in conversations if c.handoff_at is not None]
    asa = [s for c in handed if (s := _seconds(c.handoff_at, c.accepted_at)) is not None]
    aht = [s for c in handed if (s := _seconds(c.accepted_at, c.closed_at)) is not None]
    closed = [c for c in conversations if c.status == ConversationStatus.CLOSED]
    resolved = [c for c in closed if c.resolution in RESOLVED]
    fcr = [c for c in resolved if not repeated(c)]
    bot_closed = [c for c in closed if c.handoff_at is None]
    contained = [c for c in bot_closed if c.resolution in RESOLVED and not repeated(c)]
    within_sla = [s for s in asa if s <= SLA_TARGET.total_seconds()]
    abandoned = [c for c in handed if c.resolution == ABANDONED]
    queued = [c for c in conversations if c.status == ConversationStatus.QUEUED]
    queue_by_skill: dict[str, int] = defaultdict(int)
    for conversation in queued:
        queue_by_skill[conversation.skill or "general"] += 1
    return {
        "conversations": len(conversations),
        "first_response_time_s": Durations.of(frt).__dict__,
        "speed_of_answer_s": Durations.of(asa).__dict__,
        "handle_time_s": Durations.of(aht).__dict__,
        "handoffs": len(handed),
        "sla_30s": _share(len(within_sla), len(handed)),
        "fcr": _share(len(fcr), len(closed)),
        "bot_containment": _share(len(contained), len(conversations)),
        "abandonment": _share(len(abandoned), len(handed)),
        "queued": dict(queue_by_skill),
    }


async def compute_metrics(
    session: AsyncSession, since: datetime, until: datetime | None = None
) -> dict[str, object]:
    """Metrics over conversations opened in [since, until), overall and per channel."""
    until = until or utcnow()
    rows = list(
        await session.scalars(
            select(Conversation).where(
                Conversation.opened_at >= since, Conversation.opened_at < until
            )
        )
    )
    # Repeat contacts may fall after the window: look 7 days further on.
    later = list(
        await session.scalars(
            select(Conversation).where(
                Conversation.opened_at >= since, Conversation.opened_at < until + REPEAT_WINDOW
            )
        )
    )
    channels: dict[str, list[Conversation]] = defaultdict(list)
    for conversation in rows:
        channels[conversation.channel].append(conversation)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "overall": summarise(rows, later),
        "by_channel": {name: summarise(items, later) for name, items in sorted(channels.items())},
        # Outbound messages by delivery status (failed ones included) and outbox retries.
        "deliveries": await delivery_counts(session, since, until),
    }


async def sla_by_skill(
    session: AsyncSession, since: datetime, until: datetime | None = None
) -> dict[str, float | None]:
    """Per skill: the share of handoffs in [since, until) accepted within 30 s (the wallboard)."""
    until = until or utcnow()
    rows = await session.execute(
        select(Conversation.skill, Conversation.handoff_at, Conversation.accepted_at).where(
            Conversation.handoff_at >= since, Conversation.handoff_at < until
        )
    )
    handed: dict[str, int] = defaultdict(int)
    within: dict[str, int] = defaultdict(int)
    for skill, handoff_at, accepted_at in rows:
        name = skill or "general"
        handed[name] += 1
        waited = _seconds(handoff_at, accepted_at)
        if waited is not None and waited <= SLA_TARGET.total_seconds():
            within[name] += 1
    return {name: _share(within[name], count) for name, count in handed.items()}
