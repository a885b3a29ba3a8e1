"""The `servicehub` command: run the hub, manage its knowledge base and database."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from bots.rasa_cli import rasa
from hub.errors import HubError
from hub.settings import Settings, load_settings

log = logging.getLogger("servicehub")


def _settings() -> Settings:
    try:
        return load_settings()
    except HubError as error:
        _fail(error.message)


def _fail(message: str) -> NoReturn:
    click.echo(f"servicehub: {message}", err=True)
    sys.exit(1)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """servicehub — an omnichannel customer-service hub for financial firms.

    Settings come from SERVICEHUB_* environment variables (see the README); with none set,
    the hub runs on its embedded default: SQLite under ./var, the embedded bot, demo data.
    """


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port (default 8080).")
@click.option("--no-demo", is_flag=True, help="Do not seed demo customers, staff and KB articles.")
def serve(host: str | None, port: int | None, no_demo: bool) -> None:
    """Start the hub: web chat, the KB API and the bot, on one process.

    On first start of an empty database it seeds the demo bank (unless --no-demo) and
    builds the KB index, which takes a little while; later starts reuse the saved index.
    """
    from aiohttp import web

    from hub.app import create_app

    settings = _settings()
    overrides: dict[str, Any] = {"demo": settings.demo and not no_demo}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = settings.with_overrides(**overrides)
    _configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    base = settings.public_url or f"http://{settings.host}:{settings.port}"

    def banner(_: str) -> None:
        click.echo(
            f"servicehub is running ({'demo data, ' if settings.demo else ''}"
            f"database {settings.database_url.split('://')[0]}):\n"
            f"  demo help site + chat widget  {base}/\n"
            f"  agent console                 {base}/console\n"
            f"  KB search API                 {base}/api/kb/search?q=...\n"
            f"  health                        {base}/healthz\n"
            "Press Ctrl+C to stop."
        )

    try:
        app = create_app(settings)
    except HubError as error:
        _fail(error.message)
    web.run_app(app, host=settings.host, port=settings.port, print=banner, access_log=None)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (or threads) running tasks; Celery's default is one per CPU.",
)
@click.option(
    "--loglevel", "-l", default=None, help="DEBUG, INFO, WARNING… (SERVICEHUB_LOG_LEVEL)."
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="How tasks run: child processes, the worker's own process, or threads.",
)
@click.option(
    "--beat/--no-beat",
    default=True,
    show_default=True,
    help="Also tick the periodic outbox pass in this worker. Several workers ticking is "
    "harmless (rows are leased), but at least one must.",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    concurrency: int | None,
    loglevel: str | None,
    pool: str,
    beat: bool,
    celery_args: tuple[str, ...],
) -> None:
    """Run a Celery worker (scaled mode): it sends the outbox's replies to provider channels.

    Hubs started with SERVICEHUB_TASK_RUNNER=celery write each reply to the outbox and hand
    the sending to these workers through Redis; run one or more, with the same SERVICEHUB_*
    settings as the hubs (database, Redis, channel credentials). Retries with backoff and
    failures are recorded on the message and shown live in the agents' consoles. Any other
    options are passed to Celery's worker unchanged (`celery worker --help` lists them).
    """
    settings = _settings()
    if not settings.uses_celery:
        _fail(
            "the worker runs scaled mode: set SERVICEHUB_TASK_RUNNER=celery and "
            "SERVICEHUB_REDIS_URL, on the hubs as well. On the embedded default the hub "
            "sends replies itself and needs no worker."
        )
    from hub.celery_app import outbox_queue

    level = (loglevel or settings.log_level).upper()
    _configure_logging(level)
    if level != "DEBUG":
        # The periodic pass runs every few seconds: its "sending", "received" and
        # "succeeded" lines would bury the sends and failures the log is read for.
        for chatty in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    argv = [
        "worker",
        f"--loglevel={level}",
        f"--pool={pool}",
        f"--queues={outbox_queue(settings)}",
        # Workers share nothing but the database and the queue: no start-up sync or gossip.
        "--without-mingle",
        "--without-gossip",
    ]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    if beat:
        argv.append("--beat")
    from hub.worker import create_worker_app

    try:
        app = create_worker_app(settings)
    except HubError as error:
        _fail(error.message)
    app.worker_main([*argv, *celery_args])


@main.group()
def kb() -> None:
    """Manage the knowledge base: import articles, evaluate search, rebuild the index."""


def _progress_bar(label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    from tqdm import tqdm

    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="article", file=sys.stderr)
        bar.total = total
        bar.n = done
        bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


@kb.command("import")
@click.argument("path", type=click.Path(path_type=Path))
def kb_import(path: Path) -> None:
    """Import articles from PATH: JSONL, CSV, or a folder of Markdown files.

    JSONL lines with "kind": "article" (or no kind) are articles: id, title, body, lang,
    category, optional title_alt and questions; other lines are ignored. Re-importing an id
    updates that article (a new version). One bad line fails the whole import, naming it.
    """
    from knowledge.importer import read_articles

    settings = _settings()
    _configure_logging("WARNING")
    try:
        items = read_articles(path)
    except HubError as error:
        _fail(error.message)
    if not items:
        _fail(f"{path} holds no articles.")

    async def run() -> None:
        async with _knowledge_base(settings) as knowledge:
            update, close = _progress_bar("indexing")
            try:
                report = await knowledge.import_articles(items, actor="cli", progress=update)
            finally:
                close()
            click.echo(
                f"Imported {len(items)} articles from {path}: {report.created_or_updated} new or "
                f"changed, {report.unchanged} unchanged. Index: {report.index}."
            )

    asyncio.run(run())


@kb.command("reindex")
def kb_reindex() -> None:
    """Rebuild the KB search index from the database (after changing embedding models)."""
    settings = _settings()
    _configure_logging("WARNING")
    if settings.index_dir.exists():
        shutil.rmtree(settings.index_dir)

    async def run() -> None:
        async with _knowledge_base(settings) as knowledge:
            update, close = _progress_bar("indexing")
            try:
                report = await knowledge.sync_index(update)
            finally:
                close()
            click.echo(f"Index rebuilt: {report}.")

    asyncio.run(run())


@kb.command("eval")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--against-hub",
    is_flag=True,
    help="Search the hub's own KB instead of a fresh KB built from the file's article lines.",
)
def kb_eval(path: Path, against_hub: bool) -> None:
    """Evaluate KB search on the query lines of PATH and print the figures.

    Prints Recall@1, Recall@3 and MRR on labelled queries, the answer gate's precision and
    coverage, and its false-answer rate on queries labelled null. By default the articles
    of the same file form the KB, so the figures are reproducible.
    """
    from knowledge.evaluation import evaluate, load_eval_file

    settings = _settings()
    _configure_logging("WARNING")
    try:
        docs, queries = load_eval_file(path)
    except HubError as error:
        _fail(error.message)
    except (OSError, ValueError) as error:
        _fail(f"cannot read {path}: {error}")
    if not queries:
        _fail(f"{path} has no query lines to evaluate.")

    async def run() -> str:
        if against_hub:
            async with _knowledge_base(settings) as knowledge:
                report = evaluate(knowledge.engine, queries)
                return str(report.format())
        if not docs:
            _fail(f"{path} has no article lines; use --against-hub to search the hub's KB.")
        from knowledge.embedding import embedders_from_names
        from knowledge.search import SearchEngine

        with tempfile.TemporaryDirectory() as index_dir:
            engine = SearchEngine(embedders_from_names(settings.embedding_models), Path(index_dir))
            engine.sync(docs)
            return str(evaluate(engine, queries).format())

    click.echo(asyncio.run(run()))


@main.group()
def crm() -> None:
    """Customer data from the firm's CRM: import customers, holdings, transactions, alerts."""


@crm.command("import")
@click.argument("path", type=click.Path(path_type=Path))
def crm_import(path: Path) -> None:
    """Import customers from PATH: JSONL (one customer per line) or CSV.

    JSONL lines hold external_id, name, segment, language, risk_tags, risk_preference,
    profile and the lists identities, holdings, transactions, alerts, cases. CSV is a folder
    of customers.csv, identities.csv, holdings.csv, transactions.csv, alerts.csv, cases.csv
    (or one of them), every row keyed by external_id. Customers are updated by external_id;
    a list given replaces that kind for the customer. One bad line fails the whole import.
    """
    from hub.crm.importer import read_customers
    from hub.crm.upsert import store_customers
    from hub.storage.database import Database
    from hub.storage.migrate import upgrade_database

    settings = _settings()
    _configure_logging("WARNING")
    try:
        batch = read_customers(path, settings.default_region)
    except HubError as error:
        _fail(error.message)
    if not batch:
        _fail(f"{path} holds no customers.")

    async def run() -> str:
        database = Database(settings.database_url)
        try:
            await upgrade_database(database)
            async with database.write() as session:
                report = await store_customers(session, batch, actor="cli:crm-import")
        finally:
            await database.dispose()
        return report.describe()

    try:
        summary = asyncio.run(run())
    except HubError as error:
        _fail(error.message)
    except OSError as error:
        _fail(f"cannot reach the database: {error}")
    click.echo(f"Imported {len(batch)} customers from {path}: {summary}.")


@main.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to SERVICEHUB_DATABASE_URL (the hub also does this at start)."""
    from hub.storage.database import Database
    from hub.storage.migrate import current_revision, upgrade_database

    settings = _settings()

    async def run() -> None:
        database = Database(settings.database_url)
        try:
            before = await current_revision(database)
            await upgrade_database(database)
            after = await current_revision(database)
        finally:
            await database.dispose()
        click.echo(f"Database at revision {after} (was {before or 'empty'}).")

    try:
        asyncio.run(run())
    except OSError as error:
        _fail(f"cannot reach the database: {error}")


@asynccontextmanager
async def _knowledge_base(settings: Settings) -> AsyncIterator[Any]:
    """Open the database and the KB, with its index in step with the database."""
    from concurrent.futures import ThreadPoolExecutor

    from hub.storage.database import Database
    from hub.storage.migrate import upgrade_database
    from knowledge.embedding import embedders_from_names
    from knowledge.search import SearchEngine
    from knowledge.service import KnowledgeBase

    database = Database(settings.database_url)
    executor = ThreadPoolExecutor(max_workers=2)
    try:
        await upgrade_database(database)
        engine = SearchEngine(embedders_from_names(settings.embedding_models), settings.index_dir)
        knowledge = KnowledgeBase(database, engine, executor)
        update, close = _progress_bar("checking index")
        try:
            await knowledge.sync_index(update)
        finally:
            close()
        yield knowledge
        await knowledge.save_index()
    finally:
        executor.shutdown(wait=True)
        await database.dispose()


main.add_command(rasa)  # `servicehub rasa …`, defined with the Rasa client (bots/rasa_cli.py)
