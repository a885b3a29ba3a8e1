"""A local stand-in for an FCM HTTP v1-style push service.

It checks the bearer token, that the device token is one the service issued (unknown →
404 UNREGISTERED, as FCM answers for an uninstalled app), that `data` values are strings,
records what was pushed, and answers `{"name": …}` like FCM.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.conftest import free_port

PUSH_TOKEN = "push-service-bearer-token"
PROJECT = "servicehub-test"


@dataclass
class FakePush:
    url: str = ""  # the send URL
    device_tokens: set[str] = field(default_factory=set)  # tokens the service knows
    pushed: list[dict[str, Any]] = field(default_factory=list)  # the `message` objects
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def issue_device_token(self, name: str) -> str:
        """What the app gets from the push SDK on the phone."""
        token = f"fcm-{name}-token:APA91bH{len(self.device_tokens):04d}"
        self.device_tokens.add(token)
        return token

    async def wait_for(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.pushed) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.pushed)


def _error(status: int, code: str, message: str, fcm_code: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if fcm_code:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}
        ]
    return web.json_response({"error": error}, status=status)


def build_app(state: FakePush) -> web.Application:
    async def send(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {PUSH_TOKEN}":
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        body = await request.json()
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("token"), str):
            return _error(400, "INVALID_ARGUMENT", "message.token is required", "INVALID_ARGUMENT")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return _error(
                400, "INVALID_ARGUMENT", "data values must be strings", "INVALID_ARGUMENT"
            )
        if message["token"] not in state.device_tokens:
            return _error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        state.pushed.append(message)
        state._arrived.set()
        return web.json_response({"name": f"projects/{PROJECT}/messages/0:{next(state._ids)}"})

    app = web.Application()
    app.router.add_post(f"/v1/projects/{PROJECT}/messages:send", send)
    return app


@asynccontextmanager
async def fake_push() -> AsyncIterator[FakePush]:
    state = FakePush()
    runner = web.AppRunner(build_app(state), handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}/v1/projects/{PROJECT}/messages:send"
    try:
        yield state
    finally:
        await runner.cleanup()
