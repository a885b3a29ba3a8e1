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

import redis.asyncio as aioredis
import socketio
from aiohttp import web
from celery import Celery
from sqlalchemy import func, select, text

from agent_console.http import ConsoleApiRoutes
from agent_console.masking import mask_text
from agent_console.namespaces import ConsoleDeps, ConsoleSockets
from agent_console.web import ConsoleRoutes
from bots.base import Bot
from bots.embedded import EmbeddedBot
from bots.fallback import CircuitBreaker, FallbackBot
from bots.http import BotApiRoutes
from bots.rasa_client import RasaBot
from bots.turn_grants import TurnGrants
from channels.base import ChannelContext, KnownLanguage, RecordStatus
from channels.registry import ChannelRegistry
from channels.twilio_sms import TwilioSmsSender
from hub import demo
from hub.celery_app import OutboxNotifier, make_celery
from hub.delivery_status import StatusChange, record_provider_status
from hub.devices import DeviceDirectory
from hub.domain import CustomerAddress, DeliveryStatus, MessageView
from hub.http import error_middleware
from hub.settings import Settings, with_local_secrets
from hub.status_bus import follow_status_changes
from hub.storage.database import Database
from hub.storage.migrate import upgrade_database
from hub.storage.models import KbArticle
from hub.tasks import BackgroundTasks
from knowledge.embedding import Embedder, embedders_from_names
from knowledge.http import KnowledgeRoutes
from knowledge.importer import read_articles
from knowledge.search import SearchEngine
from knowledge.service import KnowledgeBase
from routing.engine import RoutingEngine
from routing.events import FanOutSink, MessageStatusChanged
from routing.http import MetricsRoutes
from routing.identity import known_language
from routing.live_channels import AssignmentsToChannels, LiveCallRouting
from routing.otp import LoggingSmsSender, PhoneVerification
from routing.outbox import Outbox
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
    routing: RoutingEngine  # offers, assignment, presence, SLA/overflow timers
    console: ConsoleSockets  # the `/agent` and `/supervisor` namespaces
    otp: PhoneVerification | None = None  # OTP step-up; its `sender` is pluggable
    outbox: Outbox | None = None  # provider-channel deliveries (routing/outbox.py)
    rasa: RasaBot | None = None  # set with SERVICEHUB_RASA_URL; `chat_bot` wraps it
    chat_bot: Bot | None = None  # what the router asks: `bot`, or Rasa falling back to it
    celery: Celery | None = None  # scaled mode: workers send the outbox (hub/worker.py)
    sms: TwilioSmsSender | None = None  # one-time codes by Twilio SMS, when configured


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
        kb=kb,
        embedders=models,
        executor=executor,
        cache_dir=settings.data_dir / "cache",
        model_workers=CPU_THREADS,
    )
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins="*",  # the widget is embedded on the firm's own sites
        max_http_buffer_size=64 * 1024,
        logger=False,
        engineio_logger=False,
    )
    channels = ChannelRegistry()
    grants = TurnGrants.from_secret(settings.identity_secret)
    rasa, chat_bot = _chat_bot(settings, bot, grants)
    # Replies reach provider channels through the outbox (retries, at least once).
    outbox = Outbox(database, channels, settings.outbox)
    engine = RoutingEngine(
        database, outbox, settings.routing, max_message_chars=settings.max_message_chars
    )
    outbox.publish = engine.publish  # delivery outcomes show in the console
    # Scaled mode: Celery workers send; the hub only asks them for a pass (hub/worker.py).
    celery = make_celery(settings) if settings.uses_celery else None
    if celery is not None:
        outbox.notify = OutboxNotifier(celery)
    sms = _twilio_sms(settings)
    router = Router(
        database,
        chat_bot,
        outbox,
        tasks,
        max_message_chars=settings.max_message_chars,
        default_region=settings.default_region,
        hooks=engine,
    )
    otp = PhoneVerification(
        database,
        sms or LoggingSmsSender(),
        secret=settings.identity_secret,
        region=settings.default_region,
    )
    console = ConsoleSockets.register(
        sio, ConsoleDeps(database, engine, settings.admin_token), settings.routing.wallboard_seconds
    )
    # An accepted phone call is put through to the agent: the voice channel hears of it too.
    engine.sink = FanOutSink(console.push, AssignmentsToChannels(database, channels.agent_assigned))
    live_calls = LiveCallRouting(engine)
    channels.start(
        ChannelContext(
            accept=router.accept,
            history=_history_reader(database),
            settings=settings,
            sio=sio,
            verify_phone=otp,
            customer_typing=engine.customer_typing,
            customer_connected=engine.customer_presence,
            record_status=_status_recorder(database, engine),
            app_devices=DeviceDirectory(database),
            screen_pop=console.push.screen_pop,
            known_language=_language_reader(database),
            current_conversation=live_calls.current_state,
            return_to_queue=live_calls.return_to_queue,
            call_ended=live_calls.call_ended,
        )
    )
    hub = Hub(
        settings,
        database,
        executor,
        tasks,
        models,
        kb,
        bot,
        sio,
        channels,
        router,
        routing=engine,
        console=console,
    )
    hub.otp = otp
    hub.celery, hub.sms = celery, sms
    hub.outbox = outbox
    hub.rasa, hub.chat_bot = rasa, chat_bot

    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_REQUEST_BYTES)
    app[HUB] = hub
    sio.attach(app)
    app.router.add_get("/healthz", _healthz)
    for adapter in channels.adapters.values():
        adapter.setup(app)
    KnowledgeRoutes(kb, settings, mask=mask_text).register(app)
    MetricsRoutes(database, settings).register(app)
    BotApiRoutes(database, kb, bot, grants, settings).register(app)
    ConsoleRoutes().register(app)
    ConsoleApiRoutes(database, settings, kb).register(app)
    if settings.demo:
        demo.DemoRoutes(database, settings).register(app)
    app.cleanup_ctx.append(_database(hub))
    app.cleanup_ctx.append(_knowledge(hub))
    app.cleanup_ctx.append(_rasa_session(hub))
    app.cleanup_ctx.append(_pipeline(hub))
    app.cleanup_ctx.append(_routing(hub))
    app.cleanup_ctx.append(_sms_session(hub))
    if celery is None:
        app.cleanup_ctx.append(_outbox_runner(outbox))
    else:
        app.cleanup_ctx.append(_scaled_outbox(hub, celery))
    return app


def _chat_bot(
    settings: Settings, embedded: EmbeddedBot, grants: TurnGrants
) -> tuple[RasaBot | None, Bot]:
    """Talk to Rasa when SERVICEHUB_RASA_URL is set, with the embedded bot as its fallback."""
    if not settings.rasa_url:
        return None, embedded
    rasa = RasaBot(settings.rasa_url, settings.rasa_token, grants)
    breaker = CircuitBreaker(settings.rasa_breaker_failures, settings.rasa_breaker_cool_down)
    log.info("bot: Rasa at %s, falling back to the embedded bot", settings.rasa_url)
    return rasa, FallbackBot(rasa, embedded, settings.rasa_timeout, breaker)


def _history_reader(database: Database) -> Callable[[CustomerAddress], Any]:
    async def history(address: CustomerAddress) -> list[MessageView]:
        async with database.read() as session:
            return await customer_history(session, address)

    return history


def _language_reader(database: Database) -> KnownLanguage:
    async def language(address: CustomerAddress) -> str | None:
        async with database.read() as session:
            return await known_language(session, address)

    return language


def _status_recorder(database: Database, engine: RoutingEngine) -> RecordStatus:
    """Apply a provider's delivery receipt and show the new status in the console."""

    async def record(
        channel: str, provider_message_id: str, status: DeliveryStatus, error: str | None
    ) -> None:
        change = await record_provider_status(database, channel, provider_message_id, status, error)
        if change is not None:
            await engine.publish(
                [
                    MessageStatusChanged(
                        change.conversation_id,
                        change.message_id,
                        change.delivery_status,
                        change.delivery_error,
                    )
                ]
            )

    return record


def _database(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await upgrade_database(hub.database)
        if hub.settings.demo:
            await demo.seed_people(hub.database, hub.settings.default_region)
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


def _rasa_session(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        if hub.rasa is None:
            yield
            return
        await hub.rasa.open()
        try:
            yield
        finally:
            await hub.rasa.close()

    return ctx


def _pipeline(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await hub.router.resume_unhandled()
        try:
            yield
        finally:
            await hub.tasks.drain()

    return ctx


def _routing(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    """Run the routing loop and the wallboard feed; stop them before the database closes."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        loops = [
            asyncio.create_task(hub.routing.run(), name="routing"),
            asyncio.create_task(hub.console.feed.run(), name="wallboard"),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    return ctx


def _outbox_runner(outbox: Outbox) -> Callable[[web.Application], AsyncIterator[None]]:
    """Queue what a crash left undelivered, then run the outbox; stop it before the database."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await outbox.recover()
        runner = asyncio.create_task(outbox.run(), name="outbox")
        try:
            yield
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    return ctx


def _scaled_outbox(hub: Hub, celery: Celery) -> Callable[[web.Application], AsyncIterator[None]]:
    """Scaled mode: queue what a crash left undelivered, and show the workers' outcomes.

    The workers send; each hub republishes the outcomes they put on the status bus to the
    agents connected to it, as the in-process runner's `publish` would.
    """

    async def show(change: StatusChange) -> None:
        await hub.routing.publish(
            [
                MessageStatusChanged(
                    change.conversation_id,
                    change.message_id,
                    change.delivery_status,
                    change.delivery_error,
                )
            ]
        )

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        assert hub.outbox is not None and hub.settings.redis_url is not None
        redis = aioredis.Redis.from_url(hub.settings.redis_url)
        follower = asyncio.create_task(
            follow_status_changes(redis, hub.settings.redis_namespace, show), name="status-bus"
        )
        await hub.outbox.recover()
        try:
            yield
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            await redis.aclose()
            celery.close()

    return ctx


def _twilio_sms(settings: Settings) -> TwilioSmsSender | None:
    """Send one-time codes by Twilio SMS when an SMS sender is configured."""
    if settings.twilio is None or not settings.twilio.sms_from:
        return None
    return TwilioSmsSender(settings.twilio)


def _sms_session(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        if hub.sms is None:
            yield
            return
        await hub.sms.open()
        try:
            yield
        finally:
            await hub.sms.close()

    return ctx


async def _kb_is_empty(hub: Hub) -> bool:
    async with hub.database.read() as session:
        return not await session.scalar(select(func.count()).select_from(KbArticle))


async def _healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    async with hub.database.read() as session:
        await session.execute(text("SELECT 1"))
    body: dict[str, Any] = {"status": "ok", "articles": len(hub.kb.engine)}
    if isinstance(hub.chat_bot, FallbackBot):
        body["bot"] = hub.chat_bot.status()
    return web.json_response(body)
