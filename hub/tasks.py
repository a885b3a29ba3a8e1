"""The background task runner: work that must not hold up a reply to the caller.

On the embedded default tasks run in this process on the event loop; the scaled-out mode
(`SERVICEHUB_TASK_RUNNER=celery`) hands the same task functions to Celery workers — so far
the outbox's `deliver_due` (hub/celery_app.py, hub/worker.py). Either way a task's failure
is logged, never silently dropped, and shutdown waits for tasks in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Run coroutines in the background, keep track of them, and drain them on shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start `coro` now; its exceptions are logged with `name`."""
        if self._closing:
            coro.close()
            raise RuntimeError("the hub is shutting down; no new background work is accepted")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("background task %s failed", task.get_name(), exc_info=error)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float = 10.0) -> None:
        """Stop accepting work and wait for what is running; cancel what outlives `timeout`."""
        self._closing = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("cancelled %d background tasks at shutdown", len(pending))

    async def wait_idle(self) -> None:
        """Wait until no background task is running (tests and the CLI use this)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)


async def wait_for_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; return whether it was set.

    Not `asyncio.wait_for(event.wait(), timeout)`: on Python 3.11 that returns normally when
    the event fires in the same turn of the loop as a `task.cancel()`, and the cancellation is
    lost. A loop waiting that way can outlive its cancellation, and shutdown then waits for it
    forever (a CI run hung so in a test's teardown). `asyncio.timeout` keeps the cancellation.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
