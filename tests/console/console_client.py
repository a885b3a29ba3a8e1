"""A console's side of `/agent` or `/supervisor`, as a python-socketio client would use it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import socketio


class ConsoleClient:
    """Connects with a session token, calls events, and records everything the hub emits."""

    def __init__(self, base_url: str, token: str | None, namespace: str = "/agent") -> None:
        self.base_url = base_url
        self.token = token
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []
        self.refusal: Any = None
        self._arrived = asyncio.Event()
        self.sio.on("*", self._on_any, namespace=namespace)
        self.sio.on("connect_error", self._on_refused, namespace=namespace)

    async def _on_any(self, event: str, data: Any = None) -> None:
        self.received.append((event, data))
        self._arrived.set()

    async def _on_refused(self, data: Any = None) -> None:
        self.refusal = data
        self._arrived.set()

    async def connect(self) -> ConsoleClient:
        auth = {"token": self.token} if self.token is not None else {}
        await self.sio.connect(
            self.base_url,
            namespaces=[self.namespace],
            auth=auth,
            transports=["websocket"],
            wait_timeout=10,
        )
        first = "hello" if self.namespace == "/agent" else "wallboard"
        await self.next(first)
        return self

    async def try_connect(self) -> Any:
        """Connect expecting a refusal; return the `{code, message}` the hub refused with."""
        try:
            await self.connect()
        except socketio.exceptions.ConnectionError:
            return self.refusal.get("data") if isinstance(self.refusal, dict) else self.refusal
        finally:
            await self.sio.disconnect()
        raise AssertionError("the connection was accepted")

    async def close(self) -> None:
        await self.sio.disconnect()

    async def call(self, event: str, data: Any = None, timeout: float = 30.0) -> dict[str, Any]:
        ack = await self.sio.call(event, data, namespace=self.namespace, timeout=timeout)
        assert isinstance(ack, dict), ack
        return ack

    async def ok(self, event: str, data: Any = None) -> dict[str, Any]:
        """Call an event that must succeed; return its ack."""
        ack = await self.call(event, data)
        assert ack.get("ok") is True, (event, data, ack)
        return ack

    async def send(self, conversation_id: int, text: str) -> dict[str, Any]:
        ack = await self.ok(
            "send",
            {"conversation_id": conversation_id, "text": text, "client_id": uuid.uuid4().hex},
        )
        return dict(ack["message"])

    def of(self, event: str) -> list[Any]:
        return [data for name, data in self.received if name == event]

    async def next(
        self,
        event: str,
        where: Callable[[Any], bool] = lambda _: True,
        *,
        after: int = 0,
        timeout: float = 30.0,
    ) -> Any:
        """Wait for the first `event` (from index `after` on) whose payload satisfies `where`."""
        async with asyncio.timeout(timeout):
            while True:
                for name, data in self.received[after:]:
                    if name == event and where(data):
                        return data
                self._arrived.clear()
                await self._arrived.wait()

    async def offer_for(self, conversation_id: int | None = None, timeout: float = 30.0) -> Any:
        """Wait for an offer (of that conversation, when given)."""
        return await self.next(
            "offer",
            lambda o: conversation_id is None or o["conversation"]["id"] == conversation_id,
            timeout=timeout,
        )
