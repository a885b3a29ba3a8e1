"""Delivery outcomes: committed before `record` returns, batched across concurrent callers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from hub.domain import DeliveryResult
from hub.storage.database import Database
from hub.storage.migrate import upgrade_database
from hub.storage.models import Message
from routing.delivery_records import DeliveryRecords
from tests.storage.rows import customer_with_conversation


async def _pending_messages(database: Database, count: int) -> list[int]:
    _, conversation_id = await customer_with_conversation(database, "webchat", "v-1")
    async with database.write() as session:
        messages = [
            Message(
                conversation_id=conversation_id,
                channel="webchat",
                direction="outbound",
                author="bot",
                text=f"reply {i}",
                delivery_status="pending",
            )
            for i in range(count)
        ]
        session.add_all(messages)
        await session.flush()
        return [m.id for m in messages]


async def _statuses(database: Database) -> dict[int, tuple[str, str | None, str | None]]:
    async with database.read() as session:
        rows = await session.execute(
            select(
                Message.id,
                Message.delivery_status,
                Message.provider_message_id,
                Message.delivery_error,
            )
        )
        return {row[0]: (str(row[1]), row[2], row[3]) for row in rows}


async def test_concurrent_outcomes_share_transactions_and_are_committed_on_return(
    database: Database,
) -> None:
    ids = await _pending_messages(database, 20)
    records = DeliveryRecords(database)
    updates: list[int] = []

    def count(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("UPDATE"):
            updates.append(1)

    engines = [database.engine.sync_engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:

        async def deliver(message_id: int) -> None:
            ok = message_id % 2 == 0
            result = DeliveryResult(
                ok=ok,
                provider_message_id=f"p-{message_id}" if ok else None,
                error=None if ok else "socket gone",
            )
            await records.record([(message_id, result)])
            # Committed by the time record() returns: a fresh read sees it.
            status = (await _statuses(database))[message_id]
            assert status[0] == ("sent" if ok else "failed"), status

        await asyncio.gather(*(deliver(i) for i in ids))
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)

    statuses = await _statuses(database)
    for message_id in ids:
        if message_id % 2 == 0:
            assert statuses[message_id] == ("sent", f"p-{message_id}", None)
        else:
            assert statuses[message_id] == ("failed", None, "socket gone")
    # Twenty callers at once: far fewer UPDATE statements than outcomes.
    assert 1 <= len(updates) < len(ids), len(updates)


async def test_a_failed_batch_raises_to_its_callers_and_later_outcomes_still_commit(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    records = DeliveryRecords(database)
    try:
        # No schema yet: the write fails, and every caller of that batch hears of it.
        outcome = DeliveryResult(ok=True, provider_message_id="p-1")
        results = await asyncio.gather(
            records.record([(1, outcome)]), records.record([(2, outcome)]), return_exceptions=True
        )
        assert all(isinstance(r, OperationalError) for r in results), results
        await records.record([])  # nothing to record: returns at once

        # The recorder is not stuck after a failure: once the table exists, outcomes commit.
        await upgrade_database(database)
        (message_id,) = await _pending_messages(database, 1)
        await records.record([(message_id, outcome)])
        assert (await _statuses(database))[message_id] == ("sent", "p-1", None)
    finally:
        await database.dispose()


async def test_a_caller_that_gives_up_still_gets_its_outcome_committed(
    database: Database,
) -> None:
    first, second = await _pending_messages(database, 2)
    records = DeliveryRecords(database)
    gave_up = asyncio.create_task(records.record([(first, DeliveryResult(ok=True))]))
    await asyncio.sleep(0)  # queued behind the writer lock, not yet written
    gave_up.cancel()
    await records.record([(second, DeliveryResult(ok=False, error="gone"))])
    statuses = await _statuses(database)
    assert statuses[first][0] == "sent"
    assert statuses[second] == ("failed", None, "gone")
    assert gave_up.cancelled()
