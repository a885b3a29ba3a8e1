"""Settings, read once from `SERVICEHUB_*` environment variables and validated at start-up."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from hub.channel_settings import (
    AppPushSettings,
    MetaSettings,
    WeChatSettings,
    load_app_push_settings,
    load_meta_settings,
    load_wechat_settings,
)
from hub.errors import ConfigurationError
from hub.twilio_settings import TwilioSettings, load_twilio_settings

ENV_PREFIX = "SERVICEHUB_"
TaskRunner = Literal["inprocess", "celery"]

# Embedded-default secrets are generated per data dir (see `_persistent_secret`) so a demo
# never runs on a well-known key; production sets them explicitly.
_SECRET_FILES = {
    "identity_secret": "identity.key",
    "admin_token": "admin.token",
    "bot_service_token": "bot-service.token",  # Rasa's action server → the hub's bot API
    "rasa_token": "rasa.token",  # the hub → Rasa's webhook and HTTP API
}


@dataclass(frozen=True)
class RoutingTimings:
    """How long routing waits at each step (docs/console.md, "Queues, SLA and overflow").

    Settings rather than constants so tests and small sites can use other values.
    """

    offer_seconds: float = 20.0  # an offer not accepted by then goes to the next agent
    heartbeat_timeout_seconds: float = 45.0  # no heartbeat for this long: the agent vanished
    sla_seconds: float = 30.0  # handoff → accept; a breach alerts supervisors
    overflow_seconds: float = 60.0  # then the `general` skill may take it too
    abandon_seconds: float = 120.0  # a queued web-chat customer gone this long abandoned
    sticky_hours: float = 24.0  # the agent who served the customer this recently is preferred
    reoffer_after_seconds: float = 60.0  # an agent who declined is not re-offered it before
    tick_seconds: float = 1.0  # how often the routing loop checks its timers
    wallboard_seconds: float = 2.0  # how often the supervisors' wallboard is pushed


@dataclass(frozen=True)
class OutboxSettings:
    """How the outbox retries provider sends (docs/channels.md, "The outbox")."""

    max_attempts: int = 6  # then the message is marked failed in the console
    backoff_seconds: float = 2.0  # the first retry waits this long, each next one twice as long
    backoff_max_seconds: float = 300.0
    lease_seconds: float = 60.0  # a sender that died holding a row gives it up after this
    poll_seconds: float = 5.0  # how often rows enqueued by other processes are looked for


@dataclass(frozen=True)
class Settings:
    """Everything the hub needs to start; unset values fall back to the embedded default."""

    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    # Where background work runs (docs/architecture.md, "Scaled mode"): on the hub's event
    # loop, or in Celery workers (`servicehub worker`) with Redis as the broker.
    task_runner: TaskRunner = "inprocess"
    # Prefix of every Redis key, queue and pub/sub channel the hub uses, so several hubs (or
    # test runs) can share one Redis.
    redis_namespace: str = "servicehub"
    rasa_url: str | None = None
    rasa_token: str = ""
    rasa_timeout: float = 3.0  # seconds Rasa gets per message before the embedded bot answers
    rasa_breaker_failures: int = 3  # failures in a row that stop asking Rasa for a while
    rasa_breaker_cool_down: float = 30.0  # seconds before one message probes Rasa again
    bot_service_token: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    identity_secret: str = ""
    admin_token: str = ""
    embedding_models: tuple[str, ...] = ("e5", "use")
    max_message_chars: int = 2000
    log_level: str = "INFO"
    demo: bool = True
    # Console and customer context (docs/console.md).
    session_hours: float = 10.0
    default_region: str = "CN"  # how phone numbers without a country code are read
    crm_url: str | None = None  # a live CRM over HTTP; unset = the database copy only
    crm_token: str | None = None
    crm_timeout_seconds: float = 2.0
    crm_cache_seconds: float = 60.0
    routing: RoutingTimings = field(default_factory=RoutingTimings)
    # Social channels (hub/channel_settings.py); None = the channel is off.
    meta: MetaSettings | None = None
    wechat: WeChatSettings | None = None
    app_push: AppPushSettings | None = None  # push to the mobile app when it is offline
    twilio: TwilioSettings | None = None  # SMS, WhatsApp and voice over Twilio
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_celery(self) -> bool:
        return self.task_runner == "celery"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "kb-index"

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields replaced (CLI flags, tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build validated settings from the environment; fail with a sentence that says what to set."""
    env = dict(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = env.get(ENV_PREFIX + name)
        return value.strip() if value is not None and value.strip() else None

    data_dir = Path(get("DATA_DIR") or "var").expanduser()
    database_url = get("DATABASE_URL") or f"sqlite+aiosqlite:///{(data_dir / 'servicehub.db')}"
    database_url = _normalise_database_url(database_url)
    port_text = get("PORT") or "8080"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(
            f"SERVICEHUB_PORT must be a TCP port number between 1 and 65535, not {port_text!r}."
        )
    max_chars_text = get("MAX_MESSAGE_CHARS") or "2000"
    if not max_chars_text.isdigit() or int(max_chars_text) < 1:
        raise ConfigurationError("SERVICEHUB_MAX_MESSAGE_CHARS must be a positive whole number.")
    models = tuple(m.strip() for m in (get("EMBEDDING_MODELS") or "e5,use").split(",") if m.strip())
    if not models:
        raise ConfigurationError("SERVICEHUB_EMBEDDING_MODELS must name at least one model.")
    identity_secret = get("IDENTITY_SECRET") or ""
    admin_token = get("ADMIN_TOKEN") or ""
    if identity_secret and len(identity_secret) < 32:
        raise ConfigurationError(
            "SERVICEHUB_IDENTITY_SECRET must be at least 32 characters (RFC 7518 for "
            "HMAC-SHA256): it signs customer identities."
        )
    console = _console_settings(get)
    rasa_url = get("RASA_URL")
    if rasa_url and not rasa_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"SERVICEHUB_RASA_URL must be the Rasa server's http(s):// URL, not {rasa_url!r}."
        )
    rasa_timeout = _number(get("RASA_TIMEOUT") or "3", "RASA_TIMEOUT", 0.1, 120.0)
    breaker_failures = _number(get("RASA_BREAKER_FAILURES") or "3", "RASA_BREAKER_FAILURES", 1, 100)
    cool_down = _number(get("RASA_BREAKER_COOL_DOWN") or "30", "RASA_BREAKER_COOL_DOWN", 0, 3600)
    for name in ("RASA_TOKEN", "BOT_SERVICE_TOKEN"):
        token = get(name)
        if token and len(token) < 16:
            raise ConfigurationError(f"SERVICEHUB_{name} must be at least 16 characters.")
    extra = {k[len(ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        **_task_settings(get),
        rasa_url=rasa_url.rstrip("/") if rasa_url else None,
        rasa_token=get("RASA_TOKEN") or "",
        rasa_timeout=rasa_timeout,
        rasa_breaker_failures=int(breaker_failures),
        rasa_breaker_cool_down=cool_down,
        bot_service_token=get("BOT_SERVICE_TOKEN") or "",
        host=get("HOST") or "127.0.0.1",
        port=int(port_text),
        public_url=get("PUBLIC_URL"),
        identity_secret=identity_secret,
        admin_token=admin_token,
        embedding_models=models,
        max_message_chars=int(max_chars_text),
        log_level=(get("LOG_LEVEL") or "INFO").upper(),
        demo=(get("DEMO") or "1") not in {"0", "false", "no"},
        **console,
        routing=_routing_timings(get),
        meta=load_meta_settings(get),
        wechat=load_wechat_settings(get),
        app_push=load_app_push_settings(get),
        twilio=load_twilio_settings(get),
        outbox=_outbox_settings(get),
        extra=extra,
    )


def _task_settings(get: Callable[[str], str | None]) -> dict[str, Any]:
    """Read Redis and where background tasks run; Celery needs Redis as its broker."""
    redis_url = get("REDIS_URL")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            f"SERVICEHUB_REDIS_URL must be a redis://, rediss:// or unix:// URL, not {redis_url!r}."
        )
    runner = (get("TASK_RUNNER") or "inprocess").lower()
    if runner not in ("inprocess", "celery"):
        raise ConfigurationError(
            f"SERVICEHUB_TASK_RUNNER must be inprocess or celery, not {runner!r}."
        )
    if runner == "celery" and not redis_url:
        raise ConfigurationError(
            "SERVICEHUB_TASK_RUNNER=celery needs SERVICEHUB_REDIS_URL (e.g. "
            "redis://127.0.0.1:6379/0): Redis is the Celery broker and carries delivery "
            "outcomes from the workers back to the hubs."
        )
    namespace = get("REDIS_NAMESPACE") or "servicehub"
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", namespace):
        raise ConfigurationError(
            "SERVICEHUB_REDIS_NAMESPACE may hold only up to 64 letters, digits, '-', '_' and '.', "
            f"not {namespace!r}."
        )
    return {
        "redis_url": redis_url,
        "task_runner": "celery" if runner == "celery" else "inprocess",
        "redis_namespace": namespace,
    }


def _console_settings(get: Callable[[str], str | None]) -> dict[str, Any]:
    """Read the console's settings: session length, phone region, the live CRM."""
    import phonenumbers

    region = (get("DEFAULT_REGION") or "CN").upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigurationError(
            f"SERVICEHUB_DEFAULT_REGION must be a two-letter region code such as CN or HK, "
            f"not {region!r}."
        )
    crm_url = get("CRM_URL")
    if crm_url and not crm_url.startswith(("http://", "https://")):
        raise ConfigurationError("SERVICEHUB_CRM_URL must be an http:// or https:// URL.")
    return {
        "session_hours": _positive_number(get, "SESSION_HOURS", 10.0),
        "default_region": region,
        "crm_url": crm_url.rstrip("/") if crm_url else None,
        "crm_token": get("CRM_TOKEN"),
        "crm_timeout_seconds": _positive_number(get, "CRM_TIMEOUT_SECONDS", 2.0),
        "crm_cache_seconds": _positive_number(get, "CRM_CACHE_SECONDS", 60.0),
    }


def _routing_timings(get: Callable[[str], str | None]) -> RoutingTimings:
    """Read the routing timers (`SERVICEHUB_OFFER_SECONDS`, `SERVICEHUB_SLA_SECONDS`, ...)."""
    default = RoutingTimings()
    names = {
        "offer_seconds": "OFFER_SECONDS",
        "heartbeat_timeout_seconds": "HEARTBEAT_TIMEOUT_SECONDS",
        "sla_seconds": "SLA_SECONDS",
        "overflow_seconds": "OVERFLOW_SECONDS",
        "abandon_seconds": "ABANDON_SECONDS",
        "sticky_hours": "STICKY_HOURS",
        "reoffer_after_seconds": "REOFFER_AFTER_SECONDS",
        "tick_seconds": "ROUTING_TICK_SECONDS",
        "wallboard_seconds": "WALLBOARD_SECONDS",
    }
    return RoutingTimings(
        **{attr: _positive_number(get, env, getattr(default, attr)) for attr, env in names.items()}
    )


def _outbox_settings(get: Callable[[str], str | None]) -> OutboxSettings:
    """Read the outbox's retry policy (`SERVICEHUB_OUTBOX_MAX_ATTEMPTS`, ...)."""
    default = OutboxSettings()
    attempts = get("OUTBOX_MAX_ATTEMPTS") or str(default.max_attempts)
    if not attempts.isdigit() or not 1 <= int(attempts) <= 100:
        raise ConfigurationError(
            f"SERVICEHUB_OUTBOX_MAX_ATTEMPTS must be a whole number, 1-100, not {attempts!r}."
        )
    return OutboxSettings(
        max_attempts=int(attempts),
        backoff_seconds=_positive_number(get, "OUTBOX_BACKOFF_SECONDS", default.backoff_seconds),
        backoff_max_seconds=_positive_number(
            get, "OUTBOX_BACKOFF_MAX_SECONDS", default.backoff_max_seconds
        ),
        lease_seconds=_positive_number(get, "OUTBOX_LEASE_SECONDS", default.lease_seconds),
        poll_seconds=_positive_number(get, "OUTBOX_POLL_SECONDS", default.poll_seconds),
    )


def _positive_number(get: Callable[[str], str | None], name: str, default: float) -> float:
    text = get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise ConfigurationError(f"SERVICEHUB_{name} must be a positive number, not {text!r}.")
    return value


def with_local_secrets(settings: Settings) -> Settings:
    """Fill unset secrets from files in the data dir, creating them on first start."""
    changes: dict[str, object] = {}
    for attr, filename in _SECRET_FILES.items():
        if not getattr(settings, attr):
            changes[attr] = _persistent_secret(settings.data_dir / filename)
    return settings.with_overrides(**changes) if changes else settings


def _number(text: str, name: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also false for nan
        raise ConfigurationError(
            f"SERVICEHUB_{name} must be a number from {low:g} to {high:g}, not {text!r}."
        )
    return value


def _persistent_secret(path: Path) -> str:
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # Owner-only: the key signs customer identities for this hub.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process (`servicehub rasa serve`, say) wrote it first
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value


def _normalise_database_url(url: str) -> str:
    """Accept the usual URL spellings and pick the async driver SQLAlchemy needs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigurationError(
        "SERVICEHUB_DATABASE_URL must be a sqlite:/// or postgresql:// URL, "
        f"not {url.split(':', 1)[0]!r}."
    )
