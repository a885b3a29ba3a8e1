"""The hub's schema: the system of record for customers, conversations, messages and the KB.

Alembic migrations in `hub/storage/migrations/` create exactly these tables on SQLite and
PostgreSQL; change both together.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hub.clock import utcnow
from hub.storage.types import UTCDateTime

# Deterministic constraint names so migrations are identical on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # firm's number
    display_name: Mapped[str | None] = mapped_column(String(200))
    segment: Mapped[str | None] = mapped_column(String(50))  # "mass", "affluent", "hnw", ...
    risk_tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(8))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    identities: Mapped[list[Identity]] = relationship(back_populates="customer")


class Identity(Base):
    """A customer's address on one channel; unique per (channel, address)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_method: Mapped[str | None] = mapped_column(String(20))
    verified_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")


class Holding(Base):
    """A product the customer holds: deposit, loan, wealth product, policy, securities, card."""

    __tablename__ = "holdings"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    product_name: Mapped[str] = mapped_column(String(200))
    account_number: Mapped[str | None] = mapped_column(String(64))  # masked on display
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    maturity_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="active")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Agent(Base):
    """A person who logs in: agent, supervisor, knowledge editor or admin."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="agent")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    skills: Mapped[list[Any]] = mapped_column(JSON, default=list)
    languages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    max_concurrent: Mapped[int] = mapped_column(Integer, default=3)
    presence: Mapped[str] = mapped_column(String(20), default="offline")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Routing: a heartbeat older than the presence timeout means the agent vanished; the
    # longest-idle available agent with the skill is offered the next conversation.
    last_heartbeat_at: Mapped[datetime | None] = mapped_column()
    idle_since: Mapped[datetime | None] = mapped_column()
    locale: Mapped[str] = mapped_column(String(8), default="zh")


class Conversation(Base):
    """One contact: opened by a customer message, closed on wrap-up or inactivity."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_queue", "status", "skill", "priority", "handoff_at"),
        Index("ix_conversations_identity_status", "identity_id", "status"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="bot")
    topic: Mapped[str | None] = mapped_column(String(100))  # intent or KB category
    skill: Mapped[str | None] = mapped_column(String(50))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    language: Mapped[str | None] = mapped_column(String(8))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    handoff_context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    resolution: Mapped[str | None] = mapped_column(String(50))
    bot_misses: Mapped[int] = mapped_column(Integer, default=0)
    # An offer is a queued conversation proposed to one agent until it expires.
    offered_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    offered_at: Mapped[datetime | None] = mapped_column()
    offer_expires_at: Mapped[datetime | None] = mapped_column()
    wrap_up_code: Mapped[str | None] = mapped_column(String(50))
    sla_breached_at: Mapped[datetime | None] = mapped_column()
    overflowed_at: Mapped[datetime | None] = mapped_column()
    transfer_count: Mapped[int] = mapped_column(Integer, default=0)
    csat_score: Mapped[int | None] = mapped_column(Integer)  # 1-5 from the follow-up survey
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column()
    handoff_at: Mapped[datetime | None] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    last_message_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    """A message in a conversation, either direction; inbound ones are unique per provider id."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "channel_message_id"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        # Delivery receipts name the message by the provider's id (migration 0005).
        Index("ix_messages_channel_provider_message_id", "channel", "provider_message_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    channel: Mapped[str] = mapped_column(String(20))
    channel_message_id: Mapped[str | None] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(10))
    author: Mapped[str] = mapped_column(String(10))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    text: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    handoff: Mapped[bool] = mapped_column(Boolean, default=False)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    media_urls: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Extra facts about the message: queue position on a handoff notice, the bot and intent
    # behind a bot answer, the confidence of the KB gate.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    delivery_status: Mapped[str] = mapped_column(String(20))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Inbound only: set once the pipeline has finished with the message (bot replied, or
    # routed to a human). Unhandled messages are picked up again after a crash.
    handled_at: Mapped[datetime | None] = mapped_column()


class KbArticle(Base):
    """The current version of a knowledge-base article."""

    __tablename__ = "kb_articles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    title_alt: Mapped[str | None] = mapped_column(String(300))
    questions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    lang: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(50))
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    effective_from: Mapped[datetime | None] = mapped_column()
    effective_to: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(100))


class KbArticleVersion(Base):
    """An immutable snapshot written on every change of an article."""

    __tablename__ = "kb_article_versions"
    __table_args__ = (UniqueConstraint("article_id", "version"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    title_alt: Mapped[str | None] = mapped_column(String(300))
    questions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    lang: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(50))
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20))
    effective_from: Mapped[datetime | None] = mapped_column()
    effective_to: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))


class KbUnanswered(Base):
    """A customer question the KB could not answer confidently; for knowledge editors."""

    __tablename__ = "kb_unanswered"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    question: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    best_article_id: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AuditLog(Base):
    """Who read or revealed what, when and why; append-only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class StaffSession(Base):
    """A staff login; the bearer token is stored only as its SHA-256 hash."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class LoginAttempt(Base):
    """Every login attempt, for rate limiting across hub processes and for the audit trail."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    success: Mapped[bool] = mapped_column(Boolean, default=False)


class CustomerTransaction(Base):
    """A recent account movement, shown in the customer 360."""

    __tablename__ = "customer_transactions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    at: Mapped[datetime] = mapped_column()
    description: Mapped[str] = mapped_column(String(300))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    channel: Mapped[str | None] = mapped_column(String(30))
    reference: Mapped[str | None] = mapped_column(String(64))


class CustomerAlert(Base):
    """A risk flag an agent must see: fraud watch, AML review, overdue, vulnerable customer."""

    __tablename__ = "customer_alerts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CustomerCase(Base):
    """A case open (or closed) in the firm's case system."""

    __tablename__ = "customer_cases"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    external_ref: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="open")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class CustomerMerge(Base):
    """An explicit merge of two customer records by a person; undoable, so it records what moved."""

    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    merged_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    moved: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # ids moved, for undo
    undone_at: Mapped[datetime | None] = mapped_column()
    undone_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))


class OtpChallenge(Base):
    """A one-time code sent by SMS to step an unverified contact up to a verified customer."""

    __tablename__ = "otp_challenges"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    phone: Mapped[str] = mapped_column(String(32))  # E.164
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    verified_at: Mapped[datetime | None] = mapped_column()


class ConversationEvent(Base):
    """The timeline of a conversation beyond its messages: handoff, offers, transfers, wrap-up."""

    __tablename__ = "conversation_events"
    __table_args__ = (Index("ix_conversation_events_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(30))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CannedReply(Base):
    """A prepared answer agents insert with one click, per language (and optionally skill)."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    language: Mapped[str] = mapped_column(String(8))
    shortcut: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    skill: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxEntry(Base):
    """One outbound message waiting for (or done with) delivery through a provider channel.

    The outbox is how replies reach SMS, WhatsApp and the other provider channels at least
    once: a row per message (its `idempotency_key`), claimed with a lease so several hub
    processes or Celery workers never send it at the same time, retried with backoff.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column()  # a sender's lease on the row
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class AppDevice(Base):
    """A device of the firm's mobile app, registered for push notifications.

    Keyed by the firm's customer id from the app's identity token (the customer row may not
    exist yet when the app registers); one row per push token.
    """

    __tablename__ = "app_devices"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    customer_ref: Mapped[str] = mapped_column(String(64), index=True)  # the token's `sub`
    platform: Mapped[str] = mapped_column(String(20))  # "android", "ios", "harmony"
    push_token: Mapped[str] = mapped_column(String(512), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
