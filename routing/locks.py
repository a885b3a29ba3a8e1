"""Keyed asyncio locks: work on one conversation runs one piece at a time, in order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or awaits it.

    Conversations come and go by the thousand; keeping a lock per conversation forever
    would leak, so a key's lock lives only while someone holds or waits for it.
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._users: Counter[Hashable] = Counter()

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                self._locks.pop(key, None)

    def __len__(self) -> int:
        """How many keys are held or awaited now (tests check nothing leaks)."""
        return len(self._locks)
