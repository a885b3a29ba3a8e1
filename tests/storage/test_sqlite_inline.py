"""SQLite statements run on the event loop's thread; lock waits and scans run off it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import ConnectionPoolEntry

from hub.storage.database import BUSY_TIMEOUT_MS, Database
from hub.storage.migrate import upgrade_database
from hub.storage.sqlite_inline import InlineConnection


@pytest_asyncio.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")

    def add_thread_function(connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # SQL can then say which thread SQLite runs it on.
        connection.create_function("thread_ident", 0, threading.get_ident)

    event.listen(db.engine.sync_engine, "connect", add_thread_function)
    await upgrade_database(db)
    async with db.write() as session:
        await session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    yield db
    await db.dispose()


async def _thread_of(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT thread_ident()"))).scalar_one())


async def test_reads_and_writes_run_on_the_event_loop_thread(sqlite_db: Database) -> None:
    loop_thread = threading.get_ident()
    async with sqlite_db.read() as session:
        assert await _thread_of(session) == loop_thread
        raw = await (await session.connection()).get_raw_connection()
        assert isinstance(raw.driver_connection, InlineConnection)
    async with sqlite_db.write() as session:
        assert await _thread_of(session) == loop_thread
        await session.execute(text("INSERT INTO notes (body) VALUES ('kept')"))
    async with sqlite_db.read() as session:
        assert (await session.execute(text("SELECT body FROM notes"))).scalars().all() == ["kept"]


async def test_a_scan_runs_off_the_event_loop_thread(sqlite_db: Database) -> None:
    async with sqlite_db.read(scan=True) as session:
        assert await _thread_of(session) != threading.get_ident()
    # The connection goes back to the pool running inline again.
    async with sqlite_db.read() as session:
        assert await _thread_of(session) == threading.get_ident()


async def test_a_failed_write_rolls_back(sqlite_db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with sqlite_db.write() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES ('lost')"))
            raise RuntimeError("the caller failed half-way")
    async with sqlite_db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 0


async def test_waiting_for_another_process_lock_does_not_block_the_loop(
    sqlite_db: Database, tmp_path: Path
) -> None:
    # Another process (a CLI import, say) holds SQLite's write lock.
    other = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notes (body) VALUES ('from the other process')")

    async def write() -> int:
        async with sqlite_db.write() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES ('from the hub')"))
            return int((await session.execute(text("PRAGMA busy_timeout"))).scalar_one())

    writer = asyncio.create_task(write())
    # Had the wait blocked the loop, this sleep would only end once busy_timeout (10 s) ran
    # out, and the writer would have failed with "database is locked".
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not writer.done()
    other.execute("COMMIT")
    other.close()
    assert await writer == BUSY_TIMEOUT_MS  # the connection waits for locks as usual again
    async with sqlite_db.read() as session:
        bodies = (await session.execute(text("SELECT body FROM notes ORDER BY id"))).scalars()
        assert list(bodies) == ["from the other process", "from the hub"]


async def test_busy_timeout_is_restored_after_the_write_lock_is_taken(sqlite_db: Database) -> None:
    async with sqlite_db.write() as session:
        timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
    assert timeout == BUSY_TIMEOUT_MS
