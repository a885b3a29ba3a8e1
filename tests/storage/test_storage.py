"""The schema on SQLite and PostgreSQL: migrations, constraints, types that round-trip."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from hub.storage.database import Database
from hub.storage.migrate import alembic_config, current_revision, upgrade_database
from hub.storage.models import (
    Agent,
    AuditLog,
    Base,
    Conversation,
    Customer,
    Holding,
    Identity,
    KbArticle,
    Message,
)
from tests.storage.rows import customer_with_conversation

EXPECTED_TABLES = {
    "staff_sessions",
    "login_attempts",
    "customer_transactions",
    "customer_alerts",
    "customer_cases",
    "customer_merges",
    "otp_challenges",
    "conversation_events",
    "canned_replies",
    "customers",
    "identities",
    "holdings",
    "agents",
    "conversations",
    "messages",
    "kb_articles",
    "kb_article_versions",
    "kb_unanswered",
    "audit_log",
}


async def test_migrations_create_the_models_schema(database: Database) -> None:
    assert await current_revision(database) is not None
    async with database.engine.connect() as connection:
        tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    assert tables >= EXPECTED_TABLES
    assert set(Base.metadata.tables) <= tables
    await upgrade_database(database)  # idempotent: a second upgrade changes nothing
    assert await current_revision(database) == head_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def test_upgrading_keeps_existing_rows(database_url: str) -> None:
    """A database made by the first migration keeps its data through every later one."""
    db = Database(database_url)
    try:
        await upgrade_database(db, "0001")
        async with db.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO agents (username, display_name, role, skills, languages, "
                    "max_concurrent, presence, active, created_at) VALUES ('a', 'A', 'agent', "
                    "'[]', '[]', 3, 'offline', true, CURRENT_TIMESTAMP)"
                )
            )
        await upgrade_database(db)
        async with db.read() as session:
            agent = await session.scalar(select(Agent))
        assert agent is not None and agent.username == "a"
        assert agent.locale == "zh"  # new NOT NULL column filled for the old row
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()


async def test_message_id_is_unique_per_channel(database: Database) -> None:
    _, conversation_id = await customer_with_conversation(database)

    def message(channel: str) -> Message:
        return Message(
            conversation_id=conversation_id,
            channel=channel,
            channel_message_id="SM123",
            direction="inbound",
            author="customer",
            text="hi",
            delivery_status="received",
        )

    async with database.write() as session:
        session.add(message("sms"))
        session.add(message("whatsapp"))  # same provider id on another channel is fine
    with pytest.raises(IntegrityError):
        async with database.write() as session:
            session.add(message("sms"))
    async with database.read() as session:
        count = len(list(await session.scalars(select(Message))))
    assert count == 2  # the failed transaction left nothing behind


async def test_outbound_messages_may_share_a_null_provider_id(database: Database) -> None:
    _, conversation_id = await customer_with_conversation(database)
    async with database.write() as session:
        for text in ("one", "two"):
            session.add(
                Message(
                    conversation_id=conversation_id,
                    channel="sms",
                    direction="outbound",
                    author="bot",
                    text=text,
                    delivery_status="pending",
                )
            )
    async with database.read() as session:
        assert len(list(await session.scalars(select(Message)))) == 2


async def test_identity_is_unique_per_channel_address(database: Database) -> None:
    customer_id, _ = await customer_with_conversation(database)
    with pytest.raises(IntegrityError):
        async with database.write() as session:
            session.add(Identity(customer_id=customer_id, channel="sms", address="+8613800138000"))


async def test_times_are_utc_aware_and_round_trip(database: Database) -> None:
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 11, 30, 9, 30, tzinfo=shanghai)
    async with database.write() as session:
        session.add(
            AuditLog(
                at=moment,
                actor="agent:1",
                action="customer.view",
                subject_type="customer",
                subject_id="1",
                details={"why": "call"},
            )
        )
    async with database.read() as session:
        row = await session.scalar(select(AuditLog))
    assert row is not None
    assert row.at == moment
    assert row.at.tzinfo is not None and row.at.utcoffset() == timedelta(0)
    assert row.details == {"why": "call"}


async def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        async with database.write() as session:
            session.add(
                AuditLog(
                    at=datetime(2026, 1, 1),
                    actor="x",
                    action="y",
                    subject_type="z",
                    subject_id="1",
                    details={},
                )
            )
            await session.flush()


async def test_holdings_keep_exact_amounts_and_dates(database: Database) -> None:
    customer_id, _ = await customer_with_conversation(database)
    async with database.write() as session:
        session.add(
            Holding(
                customer_id=customer_id,
                kind="wealth",
                product_name="稳利90天",
                amount=Decimal("123456.78"),
                maturity_date=date(2027, 3, 1),
                details={},
            )
        )
    async with database.read() as session:
        holding = await session.scalar(select(Holding))
        customer = await session.get(Customer, customer_id)
    assert holding is not None and holding.amount == Decimal("123456.78")
    assert holding.maturity_date == date(2027, 3, 1)
    assert customer is not None and customer.profile == {"city": "上海"}
    assert customer.risk_tags == ["fraud_watch"]


async def test_a_failed_write_rolls_back_everything(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.write() as session:
            session.add(
                KbArticle(
                    id="kb-x",
                    title="t",
                    body="b",
                    lang="zh",
                    category="card",
                    questions=[],
                    tags=[],
                    status="published",
                    version=1,
                )
            )
            await session.flush()
            raise RuntimeError("boom")
    async with database.read() as session:
        assert await session.get(KbArticle, "kb-x") is None


async def test_utc_column_defaults_are_aware(database: Database) -> None:
    _, conversation_id = await customer_with_conversation(database)
    async with database.read() as session:
        conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    assert conversation.opened_at.tzinfo is not None
    assert abs(conversation.opened_at - datetime.now(UTC)) < timedelta(minutes=1)
