"""`servicehub rasa …`: train the Rasa model, validate the project, run Rasa + its actions."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click

from bots.rasa_server import (
    RasaConfig,
    RasaInstall,
    RasaProcesses,
    RasaSetupError,
    TrackerStore,
    train,
    validate,
)
from hub.errors import HubError
from hub.settings import Settings, load_settings, with_local_secrets


def _fail(message: str) -> NoReturn:
    click.echo(f"servicehub: {message}", err=True)
    sys.exit(1)


def _settings() -> Settings:
    try:
        return with_local_secrets(load_settings())
    except HubError as error:
        _fail(error.message)


def _models_dir(settings: Settings, out: Path | None) -> Path:
    return out or settings.data_dir / "rasa" / "models"


@click.group("rasa")
def rasa() -> None:
    """Run the Rasa bot: train its model, validate its files, serve it with its actions.

    Needs the Rasa environment that scripts/rasa-setup creates (.rasa-venv, Python 3.10).
    The hub talks to Rasa when SERVICEHUB_RASA_URL is set; without it the embedded bot answers.
    """


@rasa.command("train")
@click.option("--epochs", type=click.IntRange(1, 10_000), default=None, help="DIET's epochs.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Models directory.")
def rasa_train(epochs: int | None, out: Path | None) -> None:
    """Train the model of bots/rasa/ unless one of exactly these files exists."""
    settings = _settings()
    try:
        model = train(RasaInstall.locate(), _models_dir(settings, out), epochs)
    except RasaSetupError as error:
        _fail(str(error))
    click.echo(f"Rasa model: {model}")


@rasa.command("validate")
def rasa_validate() -> None:
    """Run `rasa data validate` on bots/rasa/ (domain, NLU data, rules, stories)."""
    try:
        result = validate(RasaInstall.locate())
    except RasaSetupError as error:
        _fail(str(error))
    click.echo(result.stdout)
    if result.returncode != 0:
        _fail("rasa data validate found errors (above).")
    click.echo("The Rasa project is valid.")


@rasa.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for both servers.")
@click.option("--port", default=5005, show_default=True, type=click.IntRange(1, 65535))
@click.option("--actions-port", default=5055, show_default=True, type=click.IntRange(1, 65535))
@click.option("--hub-url", default=None, help="Where the actions reach the hub's bot API.")
@click.option("--epochs", type=click.IntRange(1, 10_000), default=None, help="DIET's epochs.")
@click.option("--models", type=click.Path(path_type=Path), default=None, help="Models directory.")
def rasa_serve(
    host: str,
    port: int,
    actions_port: int,
    hub_url: str | None,
    epochs: int | None,
    models: Path | None,
) -> None:
    """Train if needed, then run the Rasa server and the action server until Ctrl+C.

    Rasa's HTTP API and the hub's webhook need the token in $SERVICEHUB_DATA_DIR/rasa.token
    (or SERVICEHUB_RASA_TOKEN), the same one the hub sends; the actions call the hub with the
    bot service token. With SERVICEHUB_RASA_TRACKER_STORE_URL (postgresql://…) conversations
    are kept in PostgreSQL (endpoints-scaled.yml), otherwise in Rasa's memory.
    """
    settings = _settings()
    install = RasaInstall.locate()
    tracker_url = os.environ.get("SERVICEHUB_RASA_TRACKER_STORE_URL", "").strip()
    try:
        model = train(install, _models_dir(settings, models), epochs)
        config = RasaConfig(
            model=model,
            token=settings.rasa_token,
            hub_url=hub_url or settings.public_url or f"http://{settings.host}:{settings.port}",
            service_token=settings.bot_service_token,
            host=host,
            port=port,
            actions_port=actions_port,
            tracker_store=TrackerStore.from_url(tracker_url) if tracker_url else None,
        )
        processes = RasaProcesses(install, config, settings.data_dir / "rasa" / "logs")
        click.echo(
            f"Starting Rasa ({model.name}) and the action server; logs in {processes.log_dir}"
        )
        processes.start()
    except RasaSetupError as error:
        _fail(str(error))
    click.echo(
        f"Rasa is running at {config.url} (actions at {config.actions_url}, "
        f"tracker store: {'PostgreSQL' if config.tracker_store else 'in memory'}).\n"
        f"Start the hub with SERVICEHUB_RASA_URL={config.url} to use it. Press Ctrl+C to stop."
    )

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while (gone := processes.exited()) is None:
            time.sleep(1)
    except KeyboardInterrupt:
        processes.stop()
        return
    processes.stop()
    _fail(f"the {gone} stopped; see the logs in {processes.log_dir}.")
