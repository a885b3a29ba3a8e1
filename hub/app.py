"""Wiring: `create_app(settings)` builds the whole hub, each resource paired with its teardown.

This module (with `hub/cli.py`) is the only part of `hub/` that imports the sibling
packages; everything else depends on `hub`'s domain and storage, never the reverse.
Objects are built here without I/O; connecting, migrating, seeding and indexing happen in
the app's `cleanup_ctx`, which also tears them down in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web
from sqlalchemy import func, select, text

from bots.embedded import EmbeddedBot
from channels.base import ChannelContext
from channels.registry import ChannelRegistry
from hub import demo
from hub.domain import CustomerAddress, MessageView
from hub.http import error_middleware
from hub.settings import Settings, with_local_secrets
from hub.storage.database import Database
from hub.storage.migrate import upgrade_database
from hub.storage.models import KbArticle
from hub.tasks import BackgroundTasks
from knowledge.embedding import Embedder, embedders_from_names
from knowledge.http import KnowledgeRoutes
from knowledge.importer import read_articles
from knowledge.search import SearchEngine
from knowledge.service import KnowledgeBase
from routing.http import MetricsRoutes
from routing.router import Router
from routing.transcripts import customer_history

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024
CPU_THREADS = 2  # model inference and faiss; this is what a 2-core hub can use


@dataclass
class Hub:
    """The running hub's shared resources, reachable from handlers and tests via `app[HUB]`."""

    settings: Settings
    database: Database
    executor: ThreadPoolExecutor
    tasks: BackgroundTasks
    embedders: Sequence[Embedder]
    kb: KnowledgeBase
    bot: EmbeddedBot
    sio: socketio.AsyncServer
    channels: ChannelRegistry
    router: Router


HUB = web.AppKey("hub", Hub)


def create_app(settings: Settings, embedders: Sequence[Embedder] | None = None) -> web.Application:
    """Build the application; `embedders` may be passed in to share loaded models (tests)."""
    settings = with_local_secrets(settings)
    database = Database(settings.database_url)
    executor = ThreadPoolExecutor(max_workers=CPU_THREADS, thread_name_prefix="hub-cpu")
    tasks = BackgroundTasks()
    models = (
        list(embedders)
        if embedders is not None
        else embedders_from_names(settings.embedding_models)
    )
    kb = KnowledgeBase(database, SearchEngine(models, settings.index_dir), executor)
    bot = EmbeddedBot(
        kb=kb, embedders=models, executor=executor, cache_dir=settings.data_dir / "cache"
    )
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins="*",  # the widget is embedded on the firm's own sites
        max_http_buffer_size=64 * 1024,
        logger=False,
        engineio_logger=False,
    )
    channels = ChannelRegistry()
    router = Router(database, bot, channels, tasks, max_message_chars=settings.max_message_chars)
    channels.start(
        ChannelContext(
            accept=router.accept, history=_history_reader(database), settings=settings, sio=sio
        )
    )
    hub = Hub(settings, database, executor, tasks, models, kb, bot, sio, channels, router)

    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_REQUEST_BYTES)
    app[HUB] = hub
    sio.attach(app)
    app.router.add_get("/healthz", _healthz)
    for adapter in channels.adapters.values():
        adapter.setup(app)
    KnowledgeRoutes(kb, settings).register(app)
    MetricsRoutes(database, settings).register(app)
    if settings.demo:
        demo.DemoRoutes(database, settings).register(app)
    app.cleanup_ctx.append(_database(hub))
    app.cleanup_ctx.append(_knowledge(hub))
    app.cleanup_ctx.append(_pipeline(hub))
    return app


def _history_reader(database: Database) -> Callable[[CustomerAddress], Any]:
    async def history(address: CustomerAddress) -> list[MessageView]:
        async with database.read() as session:
            return await customer_history(session, address)

    return history


def _database(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await upgrade_database(hub.database)
        if hub.settings.demo:
            await demo.seed_people(hub.database)
        try:
            yield
        finally:
            await hub.database.dispose()

    return ctx


def _knowledge(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        if hub.settings.demo and await _kb_is_empty(hub):
            for path in demo.KB_FILES:
                if path.exists():
                    await hub.kb.import_articles(read_articles(path), actor="demo-seed")
        report = await hub.kb.sync_index()
        log.info("knowledge base ready: %s", report)
        await hub.bot.warm_up()
        watcher = asyncio.create_task(hub.kb.watch(), name="kb-watch")
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await hub.kb.save_index()
            hub.executor.shutdown(wait=True, cancel_futures=True)

    return ctx


def _pipeline(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await hub.router.resume_unhandled()
        try:
            yield
        finally:
            await hub.tasks.drain()

    return ctx


async def _kb_is_empty(hub: Hub) -> bool:
    async with hub.database.read() as session:
        return not await session.scalar(select(func.count()).select_from(KbArticle))


async def _healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    async with hub.database.read() as session:
        await session.execute(text("SELECT 1"))
    return web.json_response({"status": "ok", "articles": len(hub.kb.engine)})
