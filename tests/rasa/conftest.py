"""Fixtures for the real-Rasa tests: a trained model, the Rasa and action servers, a hub.

The stack is started once per run: a hub with demo data on a free loopback port whose
`SERVICEHUB_RASA_URL` is a real Rasa 3.6 server (the model trained by scripts/rasa-setup,
or here if it is missing), whose actions run in a real rasa-sdk action server calling the
hub's bot API, with Rasa's trackers in a fresh PostgreSQL database (the scaled-out mode's
endpoints-scaled.yml). Without `.rasa-venv` the tests fail, saying to run scripts/rasa-setup.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from bots.rasa_server import (
    RasaConfig,
    RasaInstall,
    RasaProcesses,
    RasaSetupError,
    TrackerStore,
    train,
)
from hub.app import create_app
from hub.settings import Settings
from knowledge.embedding import Embedder
from tests.conftest import (
    REPO,
    RunningHub,
    copy_template,
    free_port,
    fresh_postgres_database,
    hub_settings,
)

# scripts/rasa-setup trains this model in `./dev test` (same directory, same epochs), so the
# tests find it ready; a different epoch count here just trains another one.
TEST_MODELS = REPO / ".rasa-venv" / "test-models"
TEST_EPOCHS = int(os.environ.get("SERVICEHUB_RASA_TEST_EPOCHS", "40"))
RASA_TOKEN = "test-rasa-channel-token-0123456789"
SERVICE_TOKEN = "test-bot-service-token-0123456789"
# Generous: these tests check what Rasa answers, not how fast on a busy CI machine; the
# timeout itself is tested with a Rasa that never answers (test_fallback_hub.py).
RASA_TIMEOUT = 60.0
COOL_DOWN = 1.0


@dataclass
class RasaStack:
    hub: RunningHub
    processes: RasaProcesses
    config: RasaConfig
    tracker_database: TrackerStore


@asynccontextmanager
async def hub_on_port(
    settings: Settings, embedders: list[Embedder], port: int
) -> AsyncIterator[RunningHub]:
    """Start the real app on `port` (the action server must know it before it starts)."""
    app = create_app(settings, embedders)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield RunningHub(f"http://127.0.0.1:{port}", app, settings.data_dir, settings)
    finally:
        await runner.cleanup()


@pytest.fixture(scope="session")
def rasa_install() -> RasaInstall:
    try:
        return RasaInstall.locate().check()
    except RasaSetupError as error:
        pytest.fail(f"The Rasa tests need the Rasa environment. {error}", pytrace=False)


@pytest.fixture(scope="session")
def rasa_model(rasa_install: RasaInstall) -> Path:
    try:
        return train(rasa_install, TEST_MODELS, TEST_EPOCHS)
    except RasaSetupError as error:
        pytest.fail(str(error), pytrace=False)


@pytest_asyncio.fixture(scope="session")
async def rasa_stack(
    rasa_install: RasaInstall,
    rasa_model: Path,
    demo_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    embedders: list[Embedder],
) -> AsyncIterator[RasaStack]:
    """The hub talking to a real Rasa server and action server, for the whole run."""
    root = tmp_path_factory.mktemp("rasa-stack")
    hub_port, rasa_port, actions_port = free_port(), free_port(), free_port()
    settings = hub_settings(
        copy_template(demo_template, root / "data"),
        rasa_url=f"http://127.0.0.1:{rasa_port}",
        rasa_token=RASA_TOKEN,
        bot_service_token=SERVICE_TOKEN,
        rasa_timeout=RASA_TIMEOUT,
        rasa_breaker_cool_down=COOL_DOWN,
    )
    async with (
        fresh_postgres_database() as tracker_url,
        hub_on_port(settings, embedders, hub_port) as hub,
    ):
        tracker = TrackerStore.from_url(tracker_url.replace("+asyncpg", ""))
        config = RasaConfig(
            model=rasa_model,
            token=RASA_TOKEN,
            hub_url=hub.base_url,
            service_token=SERVICE_TOKEN,
            port=rasa_port,
            actions_port=actions_port,
            tracker_store=tracker,
            hub_timeout=10.0,
        )
        processes = RasaProcesses(rasa_install, config, root / "logs")
        try:
            await asyncio.to_thread(processes.start)
        except RasaSetupError as error:
            pytest.fail(str(error), pytrace=False)
        try:
            yield RasaStack(hub, processes, config, tracker)
        finally:
            await asyncio.to_thread(processes.stop)
