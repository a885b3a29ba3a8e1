"""A Rasa that never answers in time: the embedded bot answers, the circuit opens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from knowledge.embedding import Embedder
from tests.chat_client import ChatClient
from tests.conftest import copy_template, free_port, hub_settings, run_hub
from tests.rasa.helpers import assert_nothing_lost, bots_that_answered

FAILURES_TO_OPEN = 2

# The first test of a run builds the demo hub (KB index and all); on a busy two-core machine
# that alone can pass pytest's default 300 s, which says nothing about what is tested here.
pytestmark = pytest.mark.timeout(1200)


class SlowRasa:
    """Accepts the webhook like Rasa does, then takes far longer than the hub waits."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def webhook(self, request: web.Request) -> web.Response:
        self.calls += 1
        await request.json()
        try:
            async with asyncio.timeout(60):
                await self.release.wait()
        except TimeoutError:
            pass
        return web.json_response([{"recipient_id": "x", "text": "too late"}])

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_post("/webhooks/servicehub/webhook", self.webhook)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            self.release.set()
            await runner.cleanup()


async def test_a_slow_rasa_times_out_the_embedded_bot_answers_and_the_circuit_opens(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    rasa = SlowRasa()
    async with rasa.running() as rasa_url:
        settings = hub_settings(
            copy_template(demo_template, tmp_path / "data"),
            rasa_url=rasa_url,
            rasa_timeout=0.5,
            rasa_breaker_failures=FAILURES_TO_OPEN,
            rasa_breaker_cool_down=3600,
        )
        async with run_hub(settings, embedders) as hub:
            client = await ChatClient(hub.base_url).connect()
            try:
                turns = [
                    await client.ask(text, timeout=60)
                    # One KB question, then small talk: no gate decision can hand off meanwhile.
                    for text in ("信用卡丢了怎么挂失", "你好", "谢谢", "好的")
                ]
            finally:
                await client.close()
            conversation_id = turns[0][0]["conversation_id"]
            assert all(turn and turn[0]["author"] == "bot" for turn in turns)
            assert turns[0][0]["sources"] and not any(m["handoff"] for t in turns for m in t)
            assert await bots_that_answered(hub, conversation_id) == ["embedded"] * 4
            await assert_nothing_lost(hub, conversation_id)
            # Two timeouts opened the circuit: the last two messages did not wait for Rasa.
            assert rasa.calls == FAILURES_TO_OPEN
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{hub.base_url}/healthz") as response,
            ):
                status = (await response.json())["bot"]
            assert status["circuit"] == "open"
            assert status["answered"] == {"rasa": 0, "embedded": 4}
