"""What the routing and console-flow tests share: a hub with test timings, agents, a handoff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from hub.clock import utcnow
from hub.settings import RoutingTimings
from hub.storage.models import Conversation, ConversationEvent
from knowledge.embedding import Embedder
from tests.chat_client import ChatClient
from tests.conftest import RunningHub, copy_template, fresh_postgres_database, hub_settings, run_hub
from tests.console.console_client import ConsoleClient
from tests.console.helpers import call

# The routing loop only runs its timers when a test says so (`tick(now=...)`); triggered
# routing (handoff, presence, freed capacity) still runs at once, as in production.
MANUAL_TIMERS = RoutingTimings(tick_seconds=3600.0)

# The demo staff (hub/demo_data/agents.jsonl).
DEMO_PASSWORDS = {
    "agent.li": "demo-li-wealth",
    "agent.wang": "demo-wang-cards",
    "agent.chen": "demo-chen-loans",
    "agent.zhou": "demo-zhou-english",
    "agent.huang": "demo-huang-securities",
    "supervisor.sun": "demo-sun-supervisor",
    "editor.xu": "demo-xu-editor",
    "admin.gao": "demo-gao-admin",
}


async def login(hub: RunningHub, username: str) -> str:
    """Log in as a demo staff member; return the session token."""
    status, body = await call(
        hub,
        "POST",
        "/api/auth/login",
        json={"username": username, "password": DEMO_PASSWORDS[username]},
    )
    assert status == 200, body
    return str(body["token"])


@asynccontextmanager
async def routing_hub(
    template: Path,
    tmp_path: Path,
    embedders: list[Embedder],
    *,
    database_kind: str = "sqlite",
    **timings: float,
) -> AsyncIterator[RunningHub]:
    """The real hub with demo data and routing timers driven by the test."""
    data_dir = copy_template(template, tmp_path / "data")
    routing = replace(MANUAL_TIMERS, **timings)
    if database_kind == "sqlite":
        async with run_hub(hub_settings(data_dir, routing=routing), embedders) as running:
            yield running
        return
    async with (
        fresh_postgres_database() as url,
        run_hub(hub_settings(data_dir, url, routing=routing), embedders) as running,
    ):
        yield running


async def console(
    hub: RunningHub, username: str, *, available: bool = True, namespace: str = "/agent"
) -> ConsoleClient:
    """Log in as a demo staff member and connect their console (and set them available)."""
    client = await ConsoleClient(hub.base_url, await login(hub, username), namespace).connect()
    if available and namespace == "/agent":
        await client.ok("presence", {"status": "available"})
    return client


async def hand_off(hub: RunningHub, visitor_id: str | None = None) -> tuple[ChatClient, int]:
    """A web-chat customer asks for a person; return their client and the queued conversation."""
    customer = await ChatClient(hub.base_url, visitor_id=visitor_id).connect()
    replies = await customer.ask("转人工")
    notice = replies[-1]
    assert notice["handoff"] is True, replies
    return customer, int(notice["conversation_id"])


def later(seconds: float) -> datetime:
    """A moment `seconds` from now, for driving the routing timers."""
    return utcnow() + timedelta(seconds=seconds)


async def conversation(hub: RunningHub, conversation_id: int) -> Conversation:
    async with hub.hub.database.read() as session:
        found = await session.get(Conversation, conversation_id)
    assert found is not None
    return found


async def timeline(hub: RunningHub, conversation_id: int) -> list[str]:
    """The kinds of the conversation's timeline events, oldest first (read markers left out)."""
    async with hub.hub.database.read() as session:
        kinds = await session.scalars(
            select(ConversationEvent.kind)
            .where(
                ConversationEvent.conversation_id == conversation_id,
                ConversationEvent.kind != "read",
            )
            .order_by(ConversationEvent.id)
        )
        return list(kinds)
