"""The supervisors' wallboard feed: a snapshot every few seconds, and soon after any change."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio

from agent_console.push import SUPERVISOR_NAMESPACE, WALLBOARD_ROOM
from hub.clock import utcnow
from hub.storage.database import Database
from hub.tasks import wait_for_event
from routing.supervision import wallboard

log = logging.getLogger(__name__)

# Bursts of changes (a routing pass offering dozens of conversations) become one snapshot.
COALESCE_SECONDS = 0.25


class WallboardFeed:
    """Pushes `wallboard` to the supervisors' room while anyone is watching."""

    def __init__(self, sio: socketio.AsyncServer, database: Database, interval: float) -> None:
        self.sio = sio
        self.database = database
        self.interval = interval
        self.watchers: set[str] = set()  # /supervisor connections (sids) in this process
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """Note that something on the wallboard moved; a snapshot follows shortly."""
        self._changed.set()

    async def snapshot(self) -> dict[str, Any]:
        async with self.database.read(scan=True) as session:
            return await wallboard(session, utcnow())

    async def run(self) -> None:
        """Emit a snapshot every `interval` seconds and after changes, until cancelled."""
        while True:
            if await wait_for_event(self._changed, self.interval):
                await asyncio.sleep(COALESCE_SECONDS)
            self._changed.clear()
            if not self.watchers:
                continue
            try:
                await self.sio.emit(
                    "wallboard",
                    await self.snapshot(),
                    to=WALLBOARD_ROOM,
                    namespace=SUPERVISOR_NAMESPACE,
                )
            except Exception:
                log.exception("could not push the wallboard")
