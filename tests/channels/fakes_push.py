"""A local stand-in for an FCM HTTP v1-style push service.

It checks the bearer token, that the device token is one the service issued (unknown →
404 UNREGISTERED, as FCM answers for an uninstalled app), that `data` values are strings,
records what was pushed, and answers `{"name": …}` like FCM.
"""

from __future__ import annotations

import itertools
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.channels.fake_server import FakeProvider, serve_on_loopback

PUSH_TOKEN = "push-service-bearer-token"
PROJECT = "servicehub-test"


@dataclass
class FakePush(FakeProvider[dict[str, Any]]):
    """The fake's state: the device tokens it issued; in `sent`, the `message` objects it pushed.

    Its `url` is the full send URL, as the hub is configured with it.
    """

    device_tokens: set[str] = field(default_factory=set)  # tokens the service knows
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def issue_device_token(self, name: str) -> str:
        """What the app gets from the push SDK on the phone."""
        token = f"fcm-{name}-token:APA91bH{len(self.device_tokens):04d}"
        self.device_tokens.add(token)
        return token


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
        state.sent.append(message)
        state._arrived.set()
        return web.json_response({"name": f"projects/{PROJECT}/messages/0:{next(state._ids)}"})

    app = web.Application()
    app.router.add_post(f"/v1/projects/{PROJECT}/messages:send", send)
    return app


def fake_push() -> AbstractAsyncContextManager[FakePush]:
    """Run the fake push service on a loopback port."""
    return serve_on_loopback(FakePush(), build_app, f"/v1/projects/{PROJECT}/messages:send")
