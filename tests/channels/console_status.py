"""What an agent's console is told about the delivery of a reply they sent.

Channel tests check delivery where the agent sees it, not only in the database: the hub
pushes a `message_status` event per outcome (sent, retrying, failed and why).
"""

from __future__ import annotations

from typing import Any

from tests.console.console_client import ConsoleClient


async def status_shown(agent: ConsoleClient, message_id: int, status: str) -> dict[str, Any]:
    """The console's `message_status` event saying that `message_id` reached `status`."""
    shown: dict[str, Any] = await agent.next(
        "message_status", lambda s: s["id"] == message_id and s["delivery_status"] == status
    )
    return shown


async def retried_then_failed(agent: ConsoleClient, message_id: int) -> str:
    """Wait for the console to show a send of `message_id` retried, then failed; return why.

    While the outbox still retries, the reply must stay pending in the console (the agent
    should not resend it); only the last refusal marks it failed.
    """
    retrying = await agent.next(
        "message_status",
        lambda s: s["id"] == message_id and "retrying" in (s["delivery_error"] or ""),
    )
    assert retrying["delivery_status"] == "pending"
    failed = await status_shown(agent, message_id, "failed")
    return str(failed["delivery_error"])
