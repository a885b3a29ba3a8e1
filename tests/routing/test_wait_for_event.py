"""The background loops' wait (hub.tasks.wait_for_event) keeps a cancellation that arrives with
the event: on Python 3.11 `asyncio.wait_for` loses it, and shutdown then hangs on the loop."""

from __future__ import annotations

import asyncio

import pytest

from hub.tasks import wait_for_event


async def test_it_says_whether_the_event_fired() -> None:
    event = asyncio.Event()
    assert await wait_for_event(event, 0.01) is False
    event.set()
    assert await wait_for_event(event, 10) is True


async def _loop(event: asyncio.Event) -> None:
    # The shape of the routing, outbox and wallboard loops.
    while True:
        await wait_for_event(event, 10)
        event.clear()


@pytest.mark.parametrize("turns_between", [0, 1, 2])
async def test_a_cancel_arriving_with_the_event_stops_the_loop(turns_between: int) -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_loop(event))
    for _ in range(3):
        await asyncio.sleep(0)  # the loop is waiting on the event
    event.set()
    for _ in range(turns_between):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done and task.cancelled()
