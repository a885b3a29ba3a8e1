"""What every local fake provider (Twilio, Meta's Graph API, WeChat, the push service) shares.

A fake is an aiohttp app on a free loopback port whose handlers check requests the way the
provider does and record what they accept. The checks differ per provider and stay in each
`fakes_*.py`; serving the app and waiting for what it recorded do not, so they live here once.
Waiting is woken by the handlers themselves: no test sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web

from tests.conftest import free_port

Sent = TypeVar("Sent")
Item = TypeVar("Item")


@dataclass
class FakeProvider(Generic[Sent]):
    """A fake's address, what it accepted, and the event its handlers set on every request.

    Handlers append to `sent` (or another list of theirs) and then set `_arrived`; the waits
    below look again each time, so a test wakes as soon as the provider has what it expects.
    """

    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        """Wait until `condition()` holds, looking again whenever a request was recorded."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for(self, count: int, timeout: float = 60.0) -> list[Sent]:
        """Wait until at least `count` messages were accepted; return them."""
        await self.wait_until(lambda: len(self.sent) >= count, timeout)
        return list(self.sent)

    async def next_where(self, where: Callable[[Sent], bool], timeout: float = 60.0) -> Sent:
        """Wait for the first accepted message that satisfies `where`."""
        return await self.first_in(self.sent, where, timeout)

    async def first_in(
        self, recorded: list[Item], where: Callable[[Item], bool], timeout: float = 60.0
    ) -> Item:
        """Wait for the first item of `recorded` (a list the handlers append to) that fits."""
        await self.wait_until(lambda: any(where(item) for item in recorded), timeout)
        return next(item for item in recorded if where(item))


Fake = TypeVar("Fake", bound="FakeProvider[Any]")


@asynccontextmanager
async def serve_on_loopback(
    fake: Fake, build_app: Callable[[Fake], web.Application], path: str = ""
) -> AsyncIterator[Fake]:
    """Serve `build_app(fake)` on 127.0.0.1 at a free port and point `fake.url` at it.

    `path` is appended to the URL for a provider configured with a full endpoint rather than
    a base URL (the push service). A fresh port per test keeps parallel runs apart; the server
    stops on exit, even when the test failed.
    """
    runner = web.AppRunner(build_app(fake), handle_signals=False)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        fake.url = f"http://127.0.0.1:{port}{path}"
        yield fake
    finally:
        await runner.cleanup()
