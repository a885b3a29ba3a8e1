"""Delivery outcomes from Celery workers to every hub process, over Redis pub/sub.

In scaled mode a worker sends a reply and records the outcome in the database, the system
of record; then it publishes the change here, and each hub process, subscribed, shows it to
the agents connected to it. Pub/sub is fire-and-forget: a hub that is reconnecting misses
the notice, never the status, which the console reads from the database on its next load.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub.delivery_status import StatusChange

log = logging.getLogger(__name__)

OnChange = Callable[[StatusChange], Awaitable[None]]
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0


def status_channel(namespace: str) -> str:
    """The pub/sub channel that carries message status changes."""
    return f"{namespace}:message-status"


def encode_change(change: StatusChange) -> str:
    return json.dumps(
        {
            "conversation_id": change.conversation_id,
            "message_id": change.message_id,
            "delivery_status": change.delivery_status,
            "delivery_error": change.delivery_error,
        }
    )


def decode_change(data: bytes | str) -> StatusChange | None:
    """The change in a pub/sub payload, or None (logged) for one this hub cannot read."""
    try:
        body = json.loads(data)
        change = StatusChange(
            conversation_id=int(body["conversation_id"]),
            message_id=int(body["message_id"]),
            delivery_status=str(body["delivery_status"]),
            delivery_error=None if body["delivery_error"] is None else str(body["delivery_error"]),
        )
    except (ValueError, TypeError, KeyError):
        log.warning("status bus: ignored a payload that is not a status change: %.200r", data)
        return None
    return change


class StatusPublisher:
    """The worker's side: publish changes already committed to the database."""

    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self.redis = redis
        self.channel = status_channel(namespace)

    async def publish(self, changes: Sequence[StatusChange]) -> None:
        """Publish each change; a Redis failure is logged, never raised (the row is stored)."""
        for change in changes:
            try:
                await self.redis.publish(self.channel, encode_change(change))
            except (RedisError, OSError) as error:
                log.warning(
                    "status bus: message %s is %s but Redis did not take the notice: %s",
                    change.message_id,
                    change.delivery_status,
                    error,
                )


async def follow_status_changes(redis: aioredis.Redis, namespace: str, on_change: OnChange) -> None:
    """The hub's side: hand every published change to `on_change`, reconnecting forever."""
    delay = RECONNECT_MIN_SECONDS
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(status_channel(namespace))
                delay = RECONNECT_MIN_SECONDS
                async for item in pubsub.listen():
                    change = decode_change(item["data"])
                    if change is not None:
                        await _deliver(on_change, change)
        except (RedisError, OSError) as error:
            log.warning("status bus: lost Redis (%s); resubscribing in %.1f s", error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MAX_SECONDS)


async def _deliver(on_change: OnChange, change: StatusChange) -> None:
    try:
        await on_change(change)
    except Exception:  # one bad notice must not stop the feed for every later one
        log.exception("status bus: could not show the change of message %s", change.message_id)
