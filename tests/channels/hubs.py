"""The demo hub with Twilio configured against the local fake, for every Twilio test.

SMS, WhatsApp, voice, one-time codes and the Celery worker all need the same account, the
same public URL (Twilio signs webhooks for it) and a fresh fake to send to; they differ only
in a few settings, which they pass as keyword overrides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from hub.settings import OutboxSettings
from hub.twilio_settings import TwilioSettings
from knowledge.embedding import Embedder
from tests.channels.fakes_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    SMS_NUMBER,
    WHATSAPP_SENDER,
    FakeTwilio,
    fake_twilio,
)
from tests.conftest import RunningHub, copy_template, fresh_postgres_database, hub_settings, run_hub
from tests.console.routing_helpers import MANUAL_TIMERS

# Retries quick enough for a test; the policy (attempts, doubling) is the production one.
TEST_OUTBOX = OutboxSettings(
    max_attempts=3, backoff_seconds=0.05, backoff_max_seconds=0.2, poll_seconds=0.5
)


@asynccontextmanager
async def twilio_hub(
    template: Path,
    tmp_path: Path,
    embedders: list[Embedder],
    database_kind: str = "sqlite",
    *,
    twilio: Mapping[str, Any] | None = None,
    **settings: object,
) -> AsyncIterator[tuple[RunningHub, FakeTwilio]]:
    """Run the demo hub on `database_kind` ("sqlite" or "postgres") beside a fresh fake Twilio.

    By default Twilio sends SMS and WhatsApp and the outbox retries at `TEST_OUTBOX`'s pace.
    `twilio` replaces `TwilioSettings` fields (`voice_number=...`, `whatsapp_from=None`);
    `settings` replaces hub settings (`outbox=...`, `task_runner="celery"`).
    """
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(fake_twilio())
        database_url = None
        if database_kind == "postgres":
            database_url = await stack.enter_async_context(fresh_postgres_database())
        account = TwilioSettings(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            sms_from=SMS_NUMBER,
            whatsapp_from=WHATSAPP_SENDER,
            api_url=fake.url,
        )
        hub_changes: dict[str, object] = {"outbox": TEST_OUTBOX, **settings}
        configured = hub_settings(
            copy_template(template, tmp_path / "data"),
            database_url,
            routing=MANUAL_TIMERS,
            public_url=PUBLIC_URL,
            twilio=replace(account, **(twilio or {})),
            **hub_changes,
        )
        hub = await stack.enter_async_context(run_hub(configured, embedders))
        yield hub, fake
