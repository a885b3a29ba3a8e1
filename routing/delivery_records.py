"""Record how deliveries went, many per write transaction (group commit).

Every bot turn ends with one small write: the reply was handed to the channel (sent) or not
(failed). On SQLite all writes take turns on one writer lock, and under load the lock was the
hub's bottleneck: each turn took it three times (the customer's message, the reply, this
status), and customers queued behind it (docs/benchmarks.md). Statuses need not each have a
transaction of their own: callers hand theirs to `DeliveryRecords.record`, the first one to
arrive takes the writer lock, and once it holds it, writes every status that has arrived by
then in one statement. Each caller still returns only after its own status is committed, as
before; under load one lock turn carries the statuses of several turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, bindparam, update

from hub.domain import DeliveryResult, DeliveryStatus
from hub.storage.database import Database
from hub.storage.models import Message


@dataclass
class _Batch:
    rows: list[dict[str, object]] = field(default_factory=list)
    committed: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DeliveryRecords:
    """Commit delivery outcomes of committed messages, batching concurrent callers."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._open: _Batch | None = None  # collecting rows, not yet taken by a writer
        # The task writing batches, while there are any (held: the loop keeps only a weak one).
        self._writer: asyncio.Task[None] | None = None

    async def record(self, outcomes: Sequence[tuple[int, DeliveryResult]]) -> None:
        """Commit each message's outcome; return once they are committed (or raise)."""
        if not outcomes:
            return
        if self._open is None:
            self._open = _Batch()
        batch = self._open
        batch.rows.extend(_row(message_id, result) for message_id, result in outcomes)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_batches(), name="delivery-records"
            )
        # The writer task outlives a cancelled caller; the caller's rows are written anyway.
        await asyncio.shield(batch.committed)

    async def _write_batches(self) -> None:
        try:
            while self._open is not None:
                await self._write_one_batch()
        finally:
            self._writer = None
            if self._open is not None:  # cancelled (the hub is stopping): release the waiters
                batch, self._open = self._open, None
                batch.committed.cancel()

    async def _write_one_batch(self) -> None:
        batch: _Batch | None = None
        try:
            async with self.database.write() as session:
                # Taken only now, holding the writer lock: whatever arrived while this task
                # waited for the lock goes into the same statement.
                batch, self._open = self._open, None
                assert batch is not None  # only this task empties it
                await session.execute(_RECORD_OUTCOME, batch.rows)
        except BaseException as error:
            if batch is None:  # failed before taking it: the lock, or the connection
                batch, self._open = self._open, None
            if batch is not None:
                if isinstance(error, Exception):
                    batch.committed.set_exception(error)
                else:
                    batch.committed.cancel()
            if not isinstance(error, Exception):
                raise
            return
        batch.committed.set_result(None)


# One UPDATE by primary key, run for every row of a batch (executemany); the SET clause is
# the rows' other keys. Core on the table, built once: no ORM bulk machinery per batch.
_MESSAGES = cast(Table, Message.__table__)
_RECORD_OUTCOME = update(_MESSAGES).where(_MESSAGES.c.id == bindparam("message_id"))


def _row(message_id: int, result: DeliveryResult) -> dict[str, object]:
    return {
        "message_id": message_id,
        "delivery_status": DeliveryStatus.SENT if result.ok else DeliveryStatus.FAILED,
        "provider_message_id": result.provider_message_id,
        "delivery_error": result.error,
    }
