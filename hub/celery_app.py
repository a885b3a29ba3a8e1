"""Scaled mode's Celery application (Redis broker), and how a hub asks the workers for work.

Hubs and workers build the same app from the same settings. The tasks themselves are
registered by the worker's wiring (hub/worker.py); a hub sends them by name and never runs
them. No result backend: every outcome is in the database, the system of record, so a
lost task message only delays work until the next periodic pass picks the rows up.
"""

from __future__ import annotations

import asyncio
import logging

from celery import Celery

from hub.errors import ConfigurationError
from hub.settings import Settings

log = logging.getLogger(__name__)

DELIVER_OUTBOX = "servicehub.deliver_outbox"
# A "rows are waiting" notice older than this is dropped by the worker: by then a periodic
# pass has sent those rows, and a worker that was down for an hour should not replay every
# notice of that hour.
NOTICE_EXPIRES_SECONDS = 60.0
SEND_TIMEOUT_SECONDS = 5.0  # a hub gives up telling Redis after this; the schedule catches up


def outbox_queue(settings: Settings) -> str:
    return f"{settings.redis_namespace}.outbox"


def make_celery(settings: Settings) -> Celery:
    """The Celery app for these settings; fail with a sentence when scaled mode is not set."""
    if not settings.uses_celery or settings.redis_url is None:
        raise ConfigurationError(
            "Celery runs only in scaled mode: set SERVICEHUB_TASK_RUNNER=celery and "
            "SERVICEHUB_REDIS_URL (the same on the hubs and the workers)."
        )
    poll = settings.outbox.poll_seconds
    app = Celery("servicehub", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=outbox_queue(settings),
        task_ignore_result=True,
        # Every Redis key Celery writes starts with the namespace, like ours.
        broker_transport_options={"global_keyprefix": f"{settings.redis_namespace}:celery:"},
        broker_connection_timeout=SEND_TIMEOUT_SECONDS,
        broker_connection_retry_on_startup=True,
        # One pass at a time per worker process: a pass already sends up to eight rows at once.
        worker_prefetch_multiplier=1,
        # Workers need no broadcast channel (remote control, events): fewer keys and less
        # chatter on a Redis that the hubs' Socket.IO may share.
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        # The periodic pass: rows queued while Redis was down, notices lost, retries due.
        # In-memory schedule (no beat file): a tick missed across a restart costs nothing.
        beat_scheduler="celery.beat:Scheduler",
        beat_schedule={
            "outbox-pass": {
                "task": DELIVER_OUTBOX,
                "schedule": poll,
                "options": {"expires": poll},
            }
        },
    )
    return app


class OutboxNotifier:
    """The hub's `Outbox.notify` in scaled mode: send one `deliver_outbox` task per new row."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    async def __call__(self) -> None:
        # kombu publishes synchronously; a thread keeps the hub's event loop free.
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._send)
        except Exception as error:  # the row is committed: the periodic pass will send it
            log.warning("outbox: could not ask a worker for a pass (%s); the schedule will", error)

    def _send(self) -> None:
        self.app.send_task(DELIVER_OUTBOX, expires=NOTICE_EXPIRES_SECONDS, retry=False)
