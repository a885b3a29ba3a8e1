"""Domain values that cross package boundaries: addresses, messages, conversations, handoffs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    """Where a contact came from; one adapter module per value in `channels/`."""

    WEBCHAT = "webchat"
    APP = "app"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    WHATSAPP_CLOUD = "whatsapp_cloud"  # Meta's Cloud API; "whatsapp" is via Twilio
    VOICE = "voice"
    MESSENGER = "messenger"
    WECHAT = "wechat"


class ConversationStatus(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    CLOSED = "closed"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Author(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class DeliveryStatus(StrEnum):
    RECEIVED = "received"  # inbound, committed
    PENDING = "pending"  # outbound, committed, not yet handed to the channel
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class Skill(StrEnum):
    """Default skills; deployments may configure more (skills are stored as plain strings)."""

    WEALTH = "wealth"
    LOANS = "loans"
    CARDS = "cards"
    INSURANCE = "insurance"
    SECURITIES = "securities"
    GENERAL = "general"


@dataclass(frozen=True)
class CustomerAddress:
    """A customer's address on one channel: a phone number, a visitor id, an OpenID."""

    channel: str
    address: str


@dataclass(frozen=True)
class VerifiedIdentity:
    """A customer identity proven by the firm (signed token, OTP) for this contact."""

    customer_id: str
    method: str  # "token", "otp", ...


@dataclass(frozen=True)
class InboundMessage:
    """One normalised customer message, as every channel adapter produces it."""

    address: CustomerAddress
    text: str
    channel_message_id: str  # the provider's own id; the idempotency key within the channel
    verified: VerifiedIdentity | None = None
    display_name: str | None = None
    language: str | None = None
    media_urls: tuple[str, ...] = ()
    received_at: datetime | None = None


@dataclass(frozen=True)
class Source:
    """A KB article an answer came from."""

    id: str
    title: str


@dataclass(frozen=True)
class OutboundMessage:
    """One message the hub sends to a customer on their channel."""

    message_id: int
    conversation_id: int
    address: CustomerAddress
    author: Author
    text: str
    sources: tuple[Source, ...] = ()
    handoff: bool = False
    queue_position: int | None = None
    created_at: datetime | None = None
    internal: bool = False  # internal notes never leave the hub (checked in channels.base)


@dataclass(frozen=True)
class Receipt:
    """What the hub answers once an inbound message is committed."""

    message_id: int
    conversation_id: int
    customer_id: int
    duplicate: bool


@dataclass(frozen=True)
class HandoffContext:
    """Why and how the bot passed a conversation to a human; shown to the agent."""

    reason: str  # "kb_no_answer", "request_human", "complaint", "out_of_scope_repeat", ...
    skill: str
    intent: str | None = None
    confidence: float | None = None
    articles_shown: tuple[Source, ...] = ()
    summary: str = ""
    bot: str = "embedded"
    signals: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "skill": self.skill,
            "intent": self.intent,
            "confidence": self.confidence,
            "articles_shown": [{"id": s.id, "title": s.title} for s in self.articles_shown],
            "summary": self.summary,
            "bot": self.bot,
            "signals": dict(self.signals),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HandoffContext:
        return cls(
            reason=str(data["reason"]),
            skill=str(data["skill"]),
            intent=data.get("intent"),
            confidence=data.get("confidence"),
            articles_shown=tuple(
                Source(id=str(a["id"]), title=str(a["title"]))
                for a in data.get("articles_shown", [])
            ),
            summary=str(data.get("summary", "")),
            bot=str(data.get("bot", "embedded")),
            signals={str(k): float(v) for k, v in data.get("signals", {}).items()},
        )


@dataclass(frozen=True)
class CustomerContext:
    """What a bot may know about the customer it is talking to."""

    customer_id: int
    conversation_id: int
    channel: str
    verified: bool
    language: str
    display_name: str | None = None
    segment: str | None = None
    external_id: str | None = None  # the firm's customer number, only when verified
    previous_messages: tuple[tuple[str, str], ...] = ()  # (author, text), oldest first
    consecutive_misses: int = 0  # bot replies in a row that could not help the customer
    articles_shown: tuple[Source, ...] = ()  # KB articles already cited in this conversation
    topic: str | None = None  # the conversation's topic so far (intent or KB category)


@dataclass(frozen=True)
class DeliveryResult:
    """What a channel says after trying to hand a message to the customer."""

    ok: bool
    provider_message_id: str | None = None
    error: str | None = None
    # False when trying again cannot help (the provider refused the number or the content);
    # the outbox then marks the message failed at once instead of retrying.
    retryable: bool = True
    # True when the message was put in the outbox rather than handed over: its status is
    # recorded (and pushed to the console) by the outbox runner, not by the caller.
    queued: bool = False


@dataclass(frozen=True)
class AgentAssignment:
    """An agent has just taken a conversation: live channels (a phone call) put them through."""

    conversation_id: int
    agent_id: int
    address: CustomerAddress
    # The provider's id of the customer's latest message (for voice `CallSid:turn`), so any
    # hub process can find the call to connect, not only the one that took the call.
    last_channel_message_id: str | None = None


@dataclass(frozen=True)
class MessageView:
    """A message as the customer sees it when reading the conversation back."""

    id: int
    conversation_id: int
    author: str
    text: str
    sources: tuple[Source, ...]
    handoff: bool
    queue_position: int | None
    created_at: datetime
    channel_message_id: str | None
    delivery_status: str


@dataclass(frozen=True)
class PushDevice:
    """A mobile-app device registered for push notifications."""

    customer_ref: str  # the firm's customer id (the identity token's subject)
    platform: str  # "android", "ios", "harmony"
    push_token: str
