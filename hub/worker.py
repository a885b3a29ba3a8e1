"""`servicehub worker`: scaled mode's Celery worker, and the wiring it runs on.

Like hub/app.py this is wiring, so it imports the sibling packages; it builds only what
sending needs: the database, the channel adapters that deliver through the outbox, the
outbox itself and the status bus. A worker serves no HTTP and holds no Socket.IO clients:
webhooks and live sockets stay on the hubs, and live-socket channels (web chat) never use
the outbox, so they are not built here.

Each worker process gets one event loop on a thread of its own, and its context (database
engine, HTTP sessions, Redis) is built lazily on that loop by the first task: SQLAlchemy's
async engine and aiohttp's sessions belong to the loop they were made on, so they cannot
be shared across `asyncio.run` calls, and a prefork child must not inherit its parent's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import redis.asyncio as aioredis
import socketio
from aiohttp import web
from celery import Celery, Task
from celery.signals import worker_process_shutdown, worker_shutdown

from channels.base import ChannelContext
from channels.registry import CHANNEL_CLASSES, ChannelRegistry
from hub.celery_app import DELIVER_OUTBOX, make_celery
from hub.delivery_status import StatusChange
from hub.devices import DeviceDirectory
from hub.domain import CustomerAddress, InboundMessage, MessageView
from hub.settings import Settings
from hub.status_bus import StatusPublisher
from hub.storage.database import Database
from routing.events import MessageStatusChanged, RoutingEvent
from routing.outbox import Outbox
from routing.transcripts import customer_history

log = logging.getLogger(__name__)

T = TypeVar("T")
FOLLOW_UP_MIN_SECONDS = 0.25  # never reschedule faster than this, even with a row due now
CLOSE_TIMEOUT_SECONDS = 30.0


@dataclass
class WorkerContext:
    """What one worker process sends with; built on, and closed on, its event loop."""

    database: Database
    channels: ChannelRegistry
    outbox: Outbox
    redis: aioredis.Redis
    adapters: web.AppRunner  # runs the adapters' start-up/cleanup hooks; never listens

    async def close(self) -> None:
        await self.adapters.cleanup()
        await self.redis.aclose()
        await self.database.dispose()


async def open_worker_context(settings: Settings) -> WorkerContext:
    """Build the worker's database, senders, outbox and status publisher."""
    assert settings.redis_url is not None  # make_celery refused the worker otherwise
    database = Database(settings.database_url)
    channels = ChannelRegistry([n for n, cls in CHANNEL_CLASSES.items() if cls.uses_outbox])
    channels.start(
        ChannelContext(
            accept=_no_inbound,
            history=_history_reader(database),  # Meta's 24-hour window is read from it
            settings=settings,
            # Never attached to an HTTP server, so no client ever joins it: the app channel
            # sees every customer as offline here and pushes (docs/architecture.md).
            sio=socketio.AsyncServer(async_mode="aiohttp"),
            app_devices=DeviceDirectory(database),
        )
    )
    # The adapters open their HTTP sessions in `cleanup_ctx` hooks registered by `setup`;
    # an app that is set up but never given a site runs exactly those hooks.
    holder = web.Application()
    for adapter in channels.adapters.values():
        adapter.setup(holder)
    adapters = web.AppRunner(holder, handle_signals=False)
    await adapters.setup()
    redis = aioredis.Redis.from_url(settings.redis_url)
    publisher = StatusPublisher(redis, settings.redis_namespace)

    async def publish(events: Sequence[RoutingEvent]) -> None:
        await publisher.publish(
            [
                StatusChange(e.conversation_id, e.message_id, e.delivery_status, e.delivery_error)
                for e in events
                if isinstance(e, MessageStatusChanged)
            ]
        )

    outbox = Outbox(database, channels, settings.outbox, publish=publish)
    return WorkerContext(database, channels, outbox, redis, adapters)


async def _no_inbound(message: InboundMessage) -> NoReturn:
    raise RuntimeError(
        f"a worker takes no inbound messages (got one on {message.address.channel}): "
        "webhooks and sockets are served by the hubs"
    )


def _history_reader(database: Database) -> Callable[[CustomerAddress], Any]:
    async def history(address: CustomerAddress) -> list[MessageView]:
        async with database.read() as session:
            return await customer_history(session, address)

    return history


class WorkerRuntime:
    """One per worker process: an event loop on its own thread, and the context built on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._guard = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._context: WorkerContext | None = None
        self._building: asyncio.Lock | None = None

    def run(self, job: Callable[[WorkerContext], Coroutine[Any, Any, T]], timeout: float) -> T:
        """Run `job` with the context on the process's loop; wait at most `timeout` seconds."""
        future = asyncio.run_coroutine_threadsafe(self._with_context(job), self._running_loop())
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            # A prefork child inherits these attributes, but not the thread that ran the loop.
            if self._loop is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._context, self._building = None, None
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="servicehub-worker-loop", daemon=True
                )
                self._thread.start()
            return self._loop

    async def _with_context(self, job: Callable[[WorkerContext], Coroutine[Any, Any, T]]) -> T:
        if self._building is None:
            self._building = asyncio.Lock()
        async with self._building:
            if self._context is None:
                self._context = await open_worker_context(self.settings)
        return await job(self._context)

    def close(self) -> None:
        """Close the context and stop the loop (at worker shutdown)."""
        with self._guard:
            loop, thread, context = self._loop, self._thread, self._context
            if loop is None or self._pid != os.getpid():
                return
            self._loop, self._thread, self._context = None, None, None
        try:
            if context is not None:
                asyncio.run_coroutine_threadsafe(context.close(), loop).result(
                    CLOSE_TIMEOUT_SECONDS
                )
        except Exception:
            log.exception("worker: closing the database and HTTP sessions failed")
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(CLOSE_TIMEOUT_SECONDS)
            loop.close()


def create_worker_app(settings: Settings) -> Celery:
    """The Celery app with the worker's tasks registered on it."""
    app = make_celery(settings)
    runtime = WorkerRuntime(settings)
    outbox_settings = settings.outbox
    # Longer than any pass should take; a pass stuck past it holds leases that run out anyway.
    pass_timeout = max(outbox_settings.lease_seconds * 2, 60.0)

    @app.task(name=DELIVER_OUTBOX, bind=True, ignore_result=True)
    def deliver_outbox(task: Task[[], None]) -> None:
        """Send every due outbox row; come back by itself when a retry falls due soon."""

        async def one_pass(context: WorkerContext) -> float | None:
            return await context.outbox.deliver_due()

        try:
            delay = runtime.run(one_pass, pass_timeout)
        except Exception:
            log.exception("worker: outbox pass failed; the periodic pass tries again")
            return
        # A retry due before the next periodic pass gets its own pass, so the backoff the
        # settings ask for holds; later ones are left to the schedule (one timer, not one
        # per notice).
        if delay is not None and delay < outbox_settings.poll_seconds:
            countdown = max(delay, FOLLOW_UP_MIN_SECONDS)
            task.apply_async(countdown=countdown, expires=countdown + outbox_settings.poll_seconds)

    def close_runtime(**_: Any) -> None:
        runtime.close()

    # Prefork children close their own context; the solo and threads pools close at the end.
    worker_process_shutdown.connect(close_runtime, weak=False)
    worker_shutdown.connect(close_runtime, weak=False)
    return app
