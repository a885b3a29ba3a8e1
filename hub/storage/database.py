"""The database handle: one async engine, sessions for reading and for writing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from hub.storage.sqlite_inline import InlineConnection, open_inline

# How long a SQLite statement waits for another process's lock before failing.
BUSY_TIMEOUT_MS = 10000


class Database:
    """Owns the engine; `write()` gives a transaction that commits on success."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20)
        else:
            # Statements run on the event loop's thread (hub/storage/sqlite_inline.py).
            kwargs["async_creator"] = self._open_sqlite
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: the hub's own writers queue here, cheaply, and
        # `BEGIN IMMEDIATE` (below) makes a writer of another process wait its turn too.
        self._sqlite_writer = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """Open a session in a transaction; commit on success, roll back on error."""
        if self._sqlite_writer is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._sqlite_writer, self._sessions() as session, session.begin():
            driver = await _driver(session)
            if driver is not None:
                await _take_write_lock(driver)
            yield session

    @asynccontextmanager
    async def read(self, *, scan: bool = False) -> AsyncIterator[AsyncSession]:
        """Open a session for reads only.

        `scan=True` marks reads that may go through many rows (reports, the KB sync): on
        SQLite their statements run off the event loop, so other customers are not kept
        waiting. The hub's usual reads touch a few indexed rows and run inline.
        """
        async with self._sessions() as session:
            driver = await _driver(session) if scan and self.is_sqlite else None
            if driver is None:
                yield session
                return
            with driver.offloaded():
                yield session

    async def _open_sqlite(self) -> InlineConnection:
        args, options = self.engine.dialect.create_connect_args(self.engine.url)
        return await open_inline(str(args[0]), dict(options))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def _driver(session: AsyncSession) -> InlineConnection | None:
    """The session's SQLite connection, checked out now so the session keeps it."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    return driver if isinstance(driver, InlineConnection) else None


async def _take_write_lock(driver: InlineConnection) -> None:
    """Begin the transaction holding SQLite's write lock, never waiting on the event loop.

    Another process (a `servicehub kb import`, say) may hold the lock for a while, and
    `busy_timeout` waits by sleeping: so the first try does not wait, and if the lock is taken
    the wait happens on the connection's own thread. Once the lock is held, nothing later in
    the transaction waits on another process (in WAL mode readers never block a writer), so
    the rest runs inline. This BEGIN replaces the one sqlite3 would issue before a first write.
    """
    await _run(driver, "PRAGMA busy_timeout=0")
    try:
        await _run(driver, "BEGIN IMMEDIATE")
        return
    except sqlite3.OperationalError as error:
        if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # the low byte: the primary code
            raise
    finally:
        # The pooled connection's later reads must wait for locks as usual.
        await _run(driver, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    with driver.offloaded():
        await _run(driver, "BEGIN IMMEDIATE")


async def _run(driver: InlineConnection, sql: str) -> None:
    cursor = await driver.execute(sql)
    await cursor.close()


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while a write commits; NORMAL sync is durable in WAL mode
    # against process crashes (only an OS crash can lose the last transactions).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()
