"""Rasa stopped mid-conversation: the embedded bot answers, nothing is lost, Rasa resumes."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import asyncpg
import pytest

from bots.project import load_project
from tests.chat_client import ChatClient
from tests.rasa.conftest import COOL_DOWN, RasaStack
from tests.rasa.helpers import assert_nothing_lost, bots_that_answered

# Starting Rasa (TensorFlow, the model) and the hub takes minutes on a busy two-core machine.
pytestmark = [pytest.mark.rasa, pytest.mark.timeout(1200)]

TURN = 120.0


async def bot_status(stack: RasaStack) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{stack.hub.base_url}/healthz") as response,
    ):
        body = await response.json()
    status: dict[str, object] = body["bot"]
    return status


async def test_stopping_rasa_mid_conversation_switches_to_the_embedded_bot(
    rasa_stack: RasaStack,
) -> None:
    client = await ChatClient(rasa_stack.hub.base_url).connect()
    try:
        before = await client.ask("信用卡丢了怎么挂失", timeout=TURN)
        conversation_id = before[0]["conversation_id"]
        await asyncio.to_thread(rasa_stack.processes.stop_server)
        try:
            # Small talk, so no gate decision can hand the conversation to a person meanwhile.
            during = [
                await client.ask("你好", timeout=TURN),
                await client.ask("thanks!", timeout=TURN),
            ]
        finally:
            await asyncio.to_thread(rasa_stack.processes.start_server)
            await asyncio.to_thread(rasa_stack.processes.wait_ready)
        await asyncio.sleep(COOL_DOWN)  # the circuit stays open for the cool-down, if it opened
        after = await client.ask("how do I raise my transfer limit", timeout=TURN)
    finally:
        await client.close()

    for turn in (before, *during, after):
        assert turn and turn[0]["author"] == "bot" and not turn[-1]["handoff"], turn
    assert before[0]["sources"] and after[0]["sources"]
    assert during[0][0]["text"] == load_project().render("utter_greet", "zh")
    assert await bots_that_answered(rasa_stack.hub, conversation_id) == [
        "rasa",
        "embedded",
        "embedded",
        "rasa",
    ]
    await assert_nothing_lost(rasa_stack.hub, conversation_id)
    assert (await bot_status(rasa_stack))["circuit"] == "closed"

    # The restarted Rasa carried on the same tracker, kept in PostgreSQL across the restart.
    store = rasa_stack.tracker_database
    connection = await asyncpg.connect(
        host=store.host, port=store.port, user=store.user, database=store.database
    )
    try:
        rows = await connection.fetch(
            "SELECT data FROM events WHERE sender_id = $1 AND type_name = 'user' ORDER BY id",
            str(conversation_id),
        )
    finally:
        await connection.close()
    # Rasa never saw the two messages the embedded bot answered.
    assert [json.loads(row["data"])["text"] for row in rows] == [
        "信用卡丢了怎么挂失",
        "how do I raise my transfer limit",
    ]
