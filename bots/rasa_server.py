"""Run the Rasa side: train the model, start the Rasa server and the action server.

Rasa 3.6 lives in its own Python 3.10 environment (`scripts/rasa-setup` builds `.rasa-venv`),
so the hub only ever starts it as subprocesses: `servicehub rasa train|serve|validate` and
the test suite use this module. Both servers listen on loopback by default, Rasa's HTTP
API and webhook need the shared token, and telemetry is off.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bots.project import RASA_DIR

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO / ".rasa-venv"
SETUP_HINT = (
    "run scripts/rasa-setup first: it creates .rasa-venv (Python 3.10, Rasa 3.6) and the "
    "action server's environment, and trains the model"
)
STARTUP_TIMEOUT = 300.0  # loading TensorFlow and the model takes a while on two cores
LOG_TAIL_CHARS = 4000


class RasaSetupError(RuntimeError):
    """The Rasa environment is missing or broken; the message says what to do."""


@dataclass(frozen=True)
class RasaInstall:
    """Where the Rasa and action-server environments are."""

    venv: Path = DEFAULT_VENV

    @classmethod
    def locate(cls, environ: Mapping[str, str] | None = None) -> RasaInstall:
        """Use SERVICEHUB_RASA_VENV when set, else `.rasa-venv` in this checkout."""
        env = os.environ if environ is None else environ
        configured = env.get("SERVICEHUB_RASA_VENV", "").strip()
        venv = Path(configured).expanduser() if configured else DEFAULT_VENV
        return cls(venv if venv.is_absolute() else REPO / venv)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def actions_python(self) -> Path:
        return self.venv / "actions" / "bin" / "python"

    def check(self) -> RasaInstall:
        """Fail with a sentence when either environment is missing."""
        for python, what in ((self.python, "Rasa"), (self.actions_python, "action server")):
            if not python.exists():
                raise RasaSetupError(f"The {what} environment ({python}) is missing: {SETUP_HINT}.")
        return self


def quiet_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Rasa processes: telemetry off, TensorFlow quiet, nothing downloaded."""
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTHONPATH", None)  # the hub's packages must not leak into Python 3.10
    env.update(extra or {})
    return env


def train(install: RasaInstall, out: Path, epochs: int | None = None) -> Path:
    """Train the model into `out` unless it is up to date; return its path."""
    command = [str(install.check().python), "-m", "bots.rasa_training", "--out", str(out)]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    result = subprocess.run(command, cwd=REPO, env=quiet_env(), stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RasaSetupError(f"Training the Rasa model failed (exit {result.returncode}).")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines or not Path(lines[-1]).exists():
        raise RasaSetupError(f"Training printed no model path:\n{result.stdout[-LOG_TAIL_CHARS:]}")
    return Path(lines[-1])


def validate(install: RasaInstall) -> subprocess.CompletedProcess[str]:
    """Run `rasa data validate` on the project; the caller reads returncode and output."""
    command = [
        str(install.check().python),
        "-m",
        "rasa",
        "data",
        "validate",
        "--domain",
        "domain.yml",
        "--data",
        "data",
        "--config",
        "config.yml",
    ]
    return subprocess.run(
        command,
        cwd=RASA_DIR,
        env=quiet_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@dataclass(frozen=True)
class TrackerStore:
    """A PostgreSQL database for Rasa's SQL tracker store (the scaled-out mode)."""

    host: str
    port: int
    database: str
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> TrackerStore:
        """Parse `postgresql://user:password@host:port/database`."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in {"postgresql", "postgres"} or not parsed.path.strip("/"):
            raise RasaSetupError(
                "SERVICEHUB_RASA_TRACKER_STORE_URL must look like "
                f"postgresql://user:password@host:5432/database, not {url!r}."
            )
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            database=parsed.path.strip("/"),
            user=urllib.parse.unquote(parsed.username or "postgres"),
            password=urllib.parse.unquote(parsed.password or ""),
        )

    def env(self) -> dict[str, str]:
        """The variables endpoints-scaled.yml reads."""
        return {
            "SERVICEHUB_RASA_TRACKER_HOST": self.host,
            "SERVICEHUB_RASA_TRACKER_PORT": str(self.port),
            "SERVICEHUB_RASA_TRACKER_DB": self.database,
            "SERVICEHUB_RASA_TRACKER_USER": self.user,
            "SERVICEHUB_RASA_TRACKER_PASSWORD": self.password,
        }


@dataclass(frozen=True)
class RasaConfig:
    """How to run the two servers, and how they reach the hub."""

    model: Path
    token: str  # Rasa's --auth-token and the servicehub channel's token
    hub_url: str  # where the action server calls the hub's bot API
    service_token: str  # the bot service token for those calls
    host: str = "127.0.0.1"
    port: int = 5005
    actions_port: int = 5055
    tracker_store: TrackerStore | None = None
    hub_timeout: float = 2.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def actions_url(self) -> str:
        return f"http://{self.host}:{self.actions_port}"


def server_command(install: RasaInstall, config: RasaConfig) -> list[str]:
    endpoints = "endpoints-scaled.yml" if config.tracker_store else "endpoints.yml"
    return [
        str(install.python),
        "-m",
        "rasa",
        "run",
        "--enable-api",
        "--auth-token",
        config.token,
        "--interface",
        config.host,
        "--port",
        str(config.port),
        "--model",
        str(config.model),
        "--credentials",
        "credentials.yml",
        "--endpoints",
        endpoints,
    ]


def server_env(config: RasaConfig) -> dict[str, str]:
    extra = {
        "SERVICEHUB_RASA_TOKEN": config.token,
        "SERVICEHUB_RASA_ACTIONS_URL": f"{config.actions_url}/webhook",
    }
    if config.tracker_store is not None:
        extra.update(config.tracker_store.env())
    return quiet_env(extra)


def actions_command(install: RasaInstall, config: RasaConfig) -> list[str]:
    return [
        str(install.actions_python),
        "-m",
        "rasa_sdk",
        "--actions",
        "actions",
        "--port",
        str(config.actions_port),
    ]


def actions_env(config: RasaConfig) -> dict[str, str]:
    return quiet_env(
        {
            "SANIC_HOST": config.host,  # rasa-sdk's only way to pick the interface
            "SERVICEHUB_URL": config.hub_url,
            "SERVICEHUB_BOT_SERVICE_TOKEN": config.service_token,
            "SERVICEHUB_HUB_TIMEOUT": str(config.hub_timeout),
            "SERVICEHUB_RASA_PROJECT": str(RASA_DIR),
        }
    )


@dataclass
class RasaProcesses:
    """The Rasa server and the action server as child processes, logging to files."""

    install: RasaInstall
    config: RasaConfig
    log_dir: Path
    server: subprocess.Popen[bytes] | None = None
    actions: subprocess.Popen[bytes] | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def server_log(self) -> Path:
        return self.log_dir / "rasa-server.log"

    @property
    def actions_log(self) -> Path:
        return self.log_dir / "rasa-actions.log"

    def start(self, timeout: float = STARTUP_TIMEOUT) -> RasaProcesses:
        """Start the action server, then Rasa; return once both answer."""
        self.install.check()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.actions = self._spawn(
            actions_command(self.install, self.config), actions_env(self.config), self.actions_log
        )
        self.start_server()
        self.wait_ready(timeout)
        return self

    def start_server(self) -> None:
        """Start (or restart) the Rasa server alone."""
        self.server = self._spawn(
            server_command(self.install, self.config), server_env(self.config), self.server_log
        )

    def _spawn(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("ab")
        self._logs.append(handle)
        # A process group of its own, so stopping it stops whatever it started too.
        return subprocess.Popen(
            command,
            cwd=RASA_DIR,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Poll both servers until they answer; fail with their logs if one dies or hangs."""
        deadline = time.monotonic() + timeout
        pending = {"actions": self._actions_ready, "rasa": self._server_ready}
        while pending:
            for name, ready in list(pending.items()):
                if ready():
                    del pending[name]
            self._fail_if_exited()
            if not pending:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RasaSetupError(
                    f"{', '.join(pending)} did not start within {timeout:.0f} s.\n" + self.logs()
                )
            time.sleep(0.5)

    def _server_ready(self) -> bool:
        status = _get_json(f"{self.config.url}/status?token={self.config.token}")
        return bool(status and status.get("model_file"))

    def _actions_ready(self) -> bool:
        health = _get_json(f"{self.config.actions_url}/health")
        return bool(health and health.get("status") == "ok")

    def _fail_if_exited(self) -> None:
        for name, process in (("Rasa server", self.server), ("action server", self.actions)):
            if process is not None and process.poll() is not None:
                code = process.returncode
                self.stop()
                raise RasaSetupError(f"The {name} exited with status {code}.\n" + self.logs())

    def exited(self) -> str | None:
        """Name the server that has exited, if one has."""
        for name, process in (("Rasa server", self.server), ("action server", self.actions)):
            if process is not None and process.poll() is not None:
                return name
        return None

    def stop_server(self) -> None:
        """Stop the Rasa server alone (the action server keeps running)."""
        _terminate(self.server)

    def stop(self) -> None:
        """Stop both servers and close their logs."""
        _terminate(self.server)
        _terminate(self.actions)
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def logs(self) -> str:
        parts = []
        for path in (self.server_log, self.actions_log):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
                parts.append(f"--- {path.name} (last {LOG_TAIL_CHARS} characters)\n{text}")
        return "\n".join(parts)


def parse(config: RasaConfig, text: str) -> dict[str, Any]:
    """Ask the running Rasa server's NLU about `text` (`POST /model/parse`)."""
    request = urllib.request.Request(
        f"{config.url}/model/parse?token={urllib.parse.quote(config.token)}",
        data=json.dumps({"text": text}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            data = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _terminate(process: subprocess.Popen[bytes] | None, grace: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
