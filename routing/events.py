"""What routing tells the console after each committed change: typed events and the sink port.

Routing never renders or emits console payloads itself (masking and the JSON shapes belong
to `agent_console`); it publishes these events, after the transaction that caused them has
committed, to whatever `EventSink` the wiring gave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OfferMade:
    conversation_id: int
    agent_id: int
    expires_at: datetime


@dataclass(frozen=True)
class OfferWithdrawn:
    conversation_id: int
    agent_id: int
    reason: str  # "expired", "declined", "taken_over", "agent_away", "closed", ...


@dataclass(frozen=True)
class Assigned:
    conversation_id: int
    agent_id: int
    reason: str  # "accepted", "taken_over"


@dataclass(frozen=True)
class Unassigned:
    conversation_id: int
    agent_id: int
    reason: str  # "transferred", "taken_over", "requeued", "agent_vanished", ...


@dataclass(frozen=True)
class MessageAdded:
    conversation_id: int
    message_id: int


@dataclass(frozen=True)
class MessageStatusChanged:
    conversation_id: int
    message_id: int
    delivery_status: str
    delivery_error: str | None


@dataclass(frozen=True)
class CustomerTyping:
    conversation_id: int
    agent_id: int | None  # who holds the conversation, if anyone
    typing: bool


@dataclass(frozen=True)
class ConversationClosed:
    conversation_id: int
    agent_id: int | None  # who held (or was offered) it, so their console can drop it
    reason: str  # "wrap_up", "abandoned"


@dataclass(frozen=True)
class SlaBreached:
    conversation_id: int
    skill: str | None
    waiting_seconds: int


@dataclass(frozen=True)
class QueueChanged:
    """Something the wallboard shows changed: a handoff, presence, overflow, a requeue."""

    reason: str


RoutingEvent = (
    OfferMade
    | OfferWithdrawn
    | Assigned
    | Unassigned
    | MessageAdded
    | MessageStatusChanged
    | CustomerTyping
    | ConversationClosed
    | SlaBreached
    | QueueChanged
)


class EventSink(Protocol):
    """Where committed routing events go (the console's Socket.IO namespaces)."""

    async def publish(self, events: Sequence[RoutingEvent]) -> None:
        """Deliver the events; never raise for a client that has gone away."""
        ...


class NullSink:
    """A sink that drops events: for tools and benchmarks that run routing without a console."""

    async def publish(self, events: Sequence[RoutingEvent]) -> None:
        return None


class FanOutSink:
    """Publish to several sinks in turn: the console, and the channels that act on routing."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    async def publish(self, events: Sequence[RoutingEvent]) -> None:
        for sink in self.sinks:
            await sink.publish(events)
