"""Shared fixtures: loaded models, real databases (SQLite and PostgreSQL), a running hub."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from hub.app import HUB, Hub, create_app
from hub.settings import Settings
from hub.storage.database import Database
from hub.storage.migrate import upgrade_database
from knowledge.embedding import Embedder, embedders_from_names

REPO = Path(__file__).resolve().parent.parent
# A copy of ../shared/kb/dev-eval.jsonl (the team's KB development set), kept in the repository
# so that the suite runs wherever CI clones it, with no sibling `shared/` folder.
SHARED_KB = REPO / "tests" / "data" / "dev-eval.jsonl"
# The machine's PostgreSQL (trust auth); CI starts it. Each test gets a database of its own.
POSTGRES_ADMIN_URL = os.environ.get(
    "SERVICEHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IDENTITY_SECRET = "test-identity-secret-0123456789-abcdef"
ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def embedders() -> list[Embedder]:
    """The default embedding models, loaded once for the whole run."""
    models = embedders_from_names(["e5", "use"])
    for model in models:
        model.embed_queries(["warm up"])
    return models


# -- databases ----------------------------------------------------------------------------


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create an empty PostgreSQL database; drop it on exit. Yields its SQLAlchemy URL."""
    name = f"servicehub_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    server = POSTGRES_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{server}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def database_url(database_kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL on each backend the hub supports (the test runs once per backend)."""
    if database_kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest_asyncio.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated, empty database on each backend."""
    db = Database(database_url)
    await upgrade_database(db)
    yield db
    await db.dispose()


# -- a running hub --------------------------------------------------------------------------


@dataclass
class RunningHub:
    base_url: str
    app: web.Application
    data_dir: Path
    settings: Settings

    @property
    def hub(self) -> Hub:
        return self.app[HUB]


def hub_settings(data_dir: Path, database_url: str | None = None, **changes: object) -> Settings:
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url or f"sqlite+aiosqlite:///{data_dir / 'servicehub.db'}",
        identity_secret=IDENTITY_SECRET,
        admin_token=ADMIN_TOKEN,
        demo=True,
    )
    return settings.with_overrides(**changes) if changes else settings


@asynccontextmanager
async def run_hub(settings: Settings, embedders: list[Embedder]) -> AsyncIterator[RunningHub]:
    """Start the real app on a free loopback port; stop it on exit."""
    app = create_app(settings, embedders)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield RunningHub(f"http://127.0.0.1:{port}", app, settings.data_dir, settings)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="session")
async def demo_template(
    tmp_path_factory: pytest.TempPathFactory, embedders: list[Embedder]
) -> Path:
    """A data dir with the demo seeded and the KB indexed, built once per run and copied."""
    data_dir = tmp_path_factory.mktemp("demo-template")
    async with run_hub(hub_settings(data_dir), embedders):
        pass
    return data_dir


def copy_template(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


@pytest_asyncio.fixture
async def running_hub(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> AsyncIterator[RunningHub]:
    """The real hub with demo data on SQLite, on loopback, fresh for each test."""
    data_dir = copy_template(demo_template, tmp_path / "data")
    async with run_hub(hub_settings(data_dir), embedders) as running:
        yield running


@pytest_asyncio.fixture
async def running_hub_any_db(
    database_kind: str, demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> AsyncIterator[RunningHub]:
    """The real hub with demo data, once on SQLite and once on PostgreSQL."""
    data_dir = copy_template(demo_template, tmp_path / "data")
    if database_kind == "sqlite":
        async with run_hub(hub_settings(data_dir), embedders) as running:
            yield running
        return
    async with (
        fresh_postgres_database() as url,
        run_hub(hub_settings(data_dir, url), embedders) as running,
    ):
        yield running


# -- the real command, as a user starts it ----------------------------------------------------


@dataclass
class LiveHub:
    base_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def live_hub(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """`servicehub serve` in a subprocess (demo data, embedded bot), for browser tests."""
    data_dir = copy_template(demo_template, tmp_path_factory.mktemp("live") / "data")
    port = free_port()
    env = {
        **os.environ,
        "SERVICEHUB_DATA_DIR": str(data_dir),
        "SERVICEHUB_IDENTITY_SECRET": IDENTITY_SECRET,
        "SERVICEHUB_ADMIN_TOKEN": ADMIN_TOKEN,
        "SERVICEHUB_LOG_LEVEL": "WARNING",
    }
    env.pop("SERVICEHUB_DATABASE_URL", None)
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"servicehub serve exited early:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"servicehub serve did not become healthy:\n{log_path.read_text()}")
        time.sleep(0.5)
    try:
        yield LiveHub(base_url, data_dir, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
