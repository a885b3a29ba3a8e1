"""A customer's side of web chat, as a python-socketio client would use it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import socketio


class ChatClient:
    """Connects to `/chat`, sends messages, and collects what the hub emits."""

    def __init__(
        self, base_url: str, visitor_id: str | None = None, token: str | None = None
    ) -> None:
        self.base_url = base_url
        self.visitor_id = visitor_id or f"visitor-{uuid.uuid4().hex}"
        self.token = token
        self.sio = socketio.AsyncClient(reconnection=False)
        self.messages: list[dict[str, Any]] = []
        self.typing: list[dict[str, Any]] = []
        self.session: dict[str, Any] | None = None
        self._arrived = asyncio.Event()
        self.sio.on("message", self._on_message, namespace="/chat")
        self.sio.on("typing", self._on_typing, namespace="/chat")
        self.sio.on("session", self._on_session, namespace="/chat")

    async def _on_message(self, data: dict[str, Any]) -> None:
        self.messages.append(data)
        self._arrived.set()

    async def _on_typing(self, data: dict[str, Any]) -> None:
        self.typing.append(data)
        self._arrived.set()

    async def _on_session(self, data: dict[str, Any]) -> None:
        self.session = data
        self._arrived.set()

    async def connect(self) -> ChatClient:
        auth: dict[str, Any] = {"visitor_id": self.visitor_id}
        if self.token is not None:
            auth["token"] = self.token
        await self.sio.connect(
            self.base_url,
            namespaces=["/chat"],
            auth=auth,
            transports=["websocket"],
            wait_timeout=10,
        )
        await self.wait_for(lambda: self.session is not None)
        return self

    async def close(self) -> None:
        await self.sio.disconnect()

    async def send(self, text: str, client_id: str | None = None) -> dict[str, Any]:
        ack = await self.sio.call(
            "message",
            {"text": text, "client_id": client_id or uuid.uuid4().hex},
            namespace="/chat",
            timeout=30,
        )
        assert isinstance(ack, dict)
        return ack

    async def history(self) -> list[dict[str, Any]]:
        result = await self.sio.call("history", namespace="/chat", timeout=30)
        assert isinstance(result, list)
        return result

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        """Wait until `predicate()` holds, re-checking whenever something arrives."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._arrived.clear()
                await self._arrived.wait()

    async def ask(self, text: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Send `text` and return every reply of the bot's turn.

        The hub says `typing: false` after the turn's last message, so that marks the end.
        """
        before, typing_before = len(self.messages), len(self.typing)
        ack = await self.send(text)
        assert "id" in ack, ack

        def turn_over() -> bool:
            return any(t["typing"] is False for t in self.typing[typing_before:])

        await self.wait_for(turn_over, timeout)
        return self.messages[before:]
