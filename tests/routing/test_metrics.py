"""Metric definitions (DESIGN.md) on hand-built conversations, and the API over the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from hub.storage.models import Conversation
from routing.metrics import summarise

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_ids = count(1)


def conversation(
    customer: int,
    channel: str,
    topic: str | None,
    *,
    opened: timedelta = timedelta(0),
    first_response: float | None = 2.0,
    handoff: float | None = None,
    accepted: float | None = None,
    closed: float | None = 60.0,
    resolution: str | None = "resolved",
    status: str = "closed",
) -> Conversation:
    start = T0 + opened

    def at(seconds: float | None) -> datetime | None:
        return start + timedelta(seconds=seconds) if seconds is not None else None

    return Conversation(
        id=next(_ids),
        customer_id=customer,
        identity_id=1,
        channel=channel,
        status=status,
        topic=topic,
        opened_at=start,
        first_response_at=at(first_response),
        handoff_at=at(handoff),
        accepted_at=at(accepted),
        closed_at=at(closed),
        last_message_at=at(closed) or start,
        resolution=resolution,
    )


def test_repeat_contact_on_another_channel_within_7_days_breaks_fcr() -> None:
    first = conversation(1, "webchat", "card_lost")
    repeat = conversation(1, "sms", "card_lost", opened=timedelta(days=3))
    other_topic = conversation(2, "webchat", "card_lost")
    unrelated = conversation(2, "voice", "annual_fee", opened=timedelta(days=1))
    result = summarise([first, other_topic], [first, repeat, other_topic, unrelated])
    assert result["fcr"] == 0.5  # customer 1 came back on SMS about the same topic


def test_repeat_after_7_days_does_not_count() -> None:
    first = conversation(1, "webchat", "card_lost")
    late = conversation(1, "webchat", "card_lost", opened=timedelta(days=8))
    assert summarise([first], [first, late])["fcr"] == 1.0


def test_sla_asa_aht_and_abandonment() -> None:
    fast = conversation(1, "webchat", "x", handoff=5, accepted=20, closed=320)
    slow = conversation(2, "webchat", "x", handoff=5, accepted=65, closed=200)
    gone = conversation(3, "sms", "x", handoff=5, accepted=None, closed=50, resolution="abandoned")
    result = summarise([fast, slow, gone], [fast, slow, gone])
    assert result["handoffs"] == 3
    assert result["sla_30s"] == round(1 / 3, 4)
    assert result["abandonment"] == round(1 / 3, 4)
    assert result["speed_of_answer_s"]["count"] == 2  # type: ignore[index]
    assert result["handle_time_s"]["mean"] == (300 + 135) / 2  # type: ignore[index]


def test_containment_counts_only_bot_resolved_without_repeat() -> None:
    contained = conversation(1, "webchat", "fees", resolution="bot_idle")
    handed = conversation(2, "webchat", "fees", handoff=3, accepted=10, closed=100)
    repeated = conversation(3, "webchat", "fees", resolution="bot_idle")
    again = conversation(3, "app", "fees", opened=timedelta(days=2))
    result = summarise([contained, handed, repeated], [contained, handed, repeated, again])
    assert result["bot_containment"] == round(1 / 3, 4)


def test_first_response_time_percentiles() -> None:
    items = [conversation(i, "webchat", None, first_response=float(i)) for i in range(1, 11)]
    frt = summarise(items, items)["first_response_time_s"]
    assert frt == {"count": 10, "mean": 5.5, "p50": 5.0, "p90": 9.0}  # nearest-rank
