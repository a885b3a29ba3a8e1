"""How much database work one bot turn costs: a budget of SQL statements, counted for real.

On two cores the hub's own per-message work competes with the embedding models for the CPU,
and every statement is a round trip through SQLAlchemy and the driver's thread. The budget
below is what the pipeline needs (docs/benchmarks.md lists the statements); a change that
adds reads or writes to every message fails here instead of silently costing messages/s.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import event

from tests.chat_client import ChatClient
from tests.conftest import RunningHub

# accept, from a known contact: the contact with its open conversation (one read), touch the
# conversation, insert (3; the identity's last-seen time adds one at most once a minute; a
# re-delivery is caught by the unique index, not looked up); the bot's read: the turn's rows,
# recent history, the cited article (3); the answer: mark the message handled, insert, touch
# the conversation (3); delivered (1, shared by concurrent turns: routing/delivery_records).
STATEMENTS_PER_TURN = 10
QUESTIONS = ["信用卡丢了怎么挂失", "how do I raise my transfer limit", "跨行转账多久能到账"]
# The hub's timers (hub/app.py) run on their own schedule, not per message: not counted.
TIMER_TASKS = {"kb-watch", "routing", "wallboard", "outbox"}


async def test_a_bot_turn_stays_within_its_statement_budget(running_hub: RunningHub) -> None:
    statements: Counter[str] = Counter()

    def count(*args: Any) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name() in TIMER_TASKS:
            return
        statement: str = args[2]
        statements[" ".join(statement.split()[:3])] += 1

    engine = running_hub.hub.database.engine.sync_engine
    client = await ChatClient(running_hub.base_url).connect()
    try:
        await client.ask("你好")  # first contact creates the customer: not a steady turn
        event.listen(engine, "before_cursor_execute", count)
        try:
            for question in QUESTIONS:
                replies = await client.ask(question)
                assert replies[0]["author"] == "bot" and replies[0]["sources"], replies
        finally:
            event.remove(engine, "before_cursor_execute", count)
    finally:
        await client.close()
    assert statements, "no statement was counted: the listener is not wired"
    assert sum(statements.values()) <= STATEMENTS_PER_TURN * len(QUESTIONS), (
        statements.most_common()
    )
    # Each turn still commits the customer's message and the bot's answer.
    assert statements["INSERT INTO messages"] == 2 * len(QUESTIONS), statements.most_common()
