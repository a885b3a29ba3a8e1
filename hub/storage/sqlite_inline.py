"""SQLite statements on the event loop's own thread, with a way to send slow ones off it.

aiosqlite runs every call on a thread of its own and hands the result back through the event
loop. SQLAlchemy's adapter makes four such calls per statement (cursor, execute, fetch, close),
so a statement that SQLite runs in microseconds costs four thread hand-overs and four waits for
the event loop. Under load those waits are the cost: a write transaction held the hub's one
SQLite writer lock for 10 ms instead of 2 ms, because every hand-over let other customers' work
run in between (docs/benchmarks.md, "Statements on the event loop").

`InlineConnection` runs the calls directly instead. That is right for the hub's statements,
which read or write a few indexed rows. Two kinds of work must not block the event loop, and
`offloaded()` sends them to aiosqlite's thread as before:

* waiting for another process's write lock (`busy_timeout`): `Database.write()` takes the
  write lock first, with `BEGIN IMMEDIATE`, trying once without waiting and waiting, if it
  must, off the loop; once it holds it, nothing later in the transaction waits on other
  processes (in WAL mode readers never block a writer);
* reads that scan many rows (reports, the KB sync): `Database.read(scan=True)`.

This subclasses aiosqlite's `Connection` and overrides its one dispatch method, `_execute`,
which is private; SQLAlchemy's own adapter relies on aiosqlite's private `_conn` and `_tx` in
the same way. `pyproject.toml` bounds the aiosqlite version, and
tests/storage/test_sqlite_inline.py fails if the dispatch stops being ours.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import aiosqlite


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the caller's thread unless offloaded."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._offloaded = 0
        # A connection left open at exit must not keep the process alive (SQLAlchemy does the
        # same for the connections it opens itself).
        self._thread.daemon = True

    @contextmanager
    def offloaded(self) -> Iterator[None]:
        """Run this connection's calls on its worker thread while the block lasts."""
        self._offloaded += 1
        try:
            yield
        finally:
            self._offloaded -= 1

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # Offloaded calls, and calls on a closed connection (which aiosqlite refuses), take
        # aiosqlite's own way. A caller cancelled meanwhile is held by SQLAlchemy until the
        # thread's call returns, so the connection is never used by two threads at once.
        if self._offloaded or self._connection is None:
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        if not self._running:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


async def open_inline(database: str, options: dict[str, Any]) -> InlineConnection:
    """Open `database` as an `InlineConnection` (SQLAlchemy's `async_creator` calls this)."""
    # The sqlite3 connection is opened on aiosqlite's thread and used on the event loop's;
    # one session uses it at a time, one call after another, so sharing it is safe.
    connection = InlineConnection(
        partial(sqlite3.connect, database, **{**options, "check_same_thread": False})
    )
    await connection
    return connection
