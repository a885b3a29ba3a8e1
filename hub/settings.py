"""Settings, read once from `SERVICEHUB_*` environment variables and validated at start-up."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from hub.errors import ConfigurationError

ENV_PREFIX = "SERVICEHUB_"

# Embedded-default secrets are generated per data dir (see `_persistent_secret`) so a demo
# never runs on a well-known key; production sets them explicitly.
_SECRET_FILES = {"identity_secret": "identity.key", "admin_token": "admin.token"}


@dataclass(frozen=True)
class Settings:
    """Everything the hub needs to start; unset values fall back to the embedded default."""

    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    rasa_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    identity_secret: str = ""
    admin_token: str = ""
    embedding_models: tuple[str, ...] = ("e5", "use")
    max_message_chars: int = 2000
    log_level: str = "INFO"
    demo: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

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
    extra = {k[len(ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=get("REDIS_URL"),
        rasa_url=get("RASA_URL"),
        host=get("HOST") or "127.0.0.1",
        port=int(port_text),
        public_url=get("PUBLIC_URL"),
        identity_secret=identity_secret,
        admin_token=admin_token,
        embedding_models=models,
        max_message_chars=int(max_chars_text),
        log_level=(get("LOG_LEVEL") or "INFO").upper(),
        demo=(get("DEMO") or "1") not in {"0", "false", "no"},
        extra=extra,
    )


def with_local_secrets(settings: Settings) -> Settings:
    """Fill unset secrets from files in the data dir, creating them on first start."""
    changes: dict[str, object] = {}
    for attr, filename in _SECRET_FILES.items():
        if not getattr(settings, attr):
            changes[attr] = _persistent_secret(settings.data_dir / filename)
    return settings.with_overrides(**changes) if changes else settings


def _persistent_secret(path: Path) -> str:
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # Owner-only: the key signs customer identities for this hub.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
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
