"""Scaled mode: the hub queues replies, a real Celery worker (`servicehub worker`) sends them.

Everything is real but Twilio: PostgreSQL (the scaled database), Redis (the broker and the
status bus), the hub on loopback, and the worker as a user starts it, in a subprocess. Each
test uses a Redis namespace of its own, so parallel runs never share a queue or a channel.
Nothing sleeps for a fixed time: every wait polls for what a user or the database would
see, with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner
from sqlalchemy import select

from hub.celery_app import outbox_queue
from hub.cli import main
from hub.domain import CustomerAddress, DeliveryStatus
from hub.errors import ConfigurationError
from hub.settings import load_settings
from hub.status_bus import status_channel
from hub.storage.models import OutboxEntry
from knowledge.embedding import Embedder
from routing.transcripts import to_outbound
from tests.channels.console_status import retried_then_failed, status_shown
from tests.channels.fakes_twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, SMS_NUMBER, FakeTwilio
from tests.channels.hubs import TEST_OUTBOX, twilio_hub
from tests.channels.queries import committed_reply, messages, wait_status
from tests.channels.test_twilio_messaging import ANSWERABLE, WANG, send_sms
from tests.conftest import REPO, RunningHub
from tests.console.console_client import ConsoleClient
from tests.console.routing_helpers import console

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REDIS_URL = os.environ.get("SERVICEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEADLINE = 60.0


@dataclass
class Scaled:
    hub: RunningHub
    twilio: FakeTwilio
    worker: subprocess.Popen[bytes]
    worker_log: Path
    namespace: str

    def worker_output(self) -> str:
        return self.worker_log.read_text(errors="replace")[-4000:]


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `condition` until it holds; fail saying `what` was awaited after the deadline."""
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                if await condition():
                    return
                await asyncio.sleep(0.05)  # polling another process: nothing to await on
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


@asynccontextmanager
async def scaled_hub(
    template: Path, tmp_path: Path, embedders: list[Embedder], *worker_args: str
) -> AsyncIterator[Scaled]:
    """A hub in celery mode on PostgreSQL, a `servicehub worker` beside it, the fake Twilio."""
    namespace = f"servicehub-test-{uuid.uuid4().hex[:12]}"
    redis = aioredis.Redis.from_url(REDIS_URL)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(_forget_namespace, redis, namespace)
        hub, twilio = await stack.enter_async_context(
            twilio_hub(
                template,
                tmp_path,
                embedders,
                "postgres",
                twilio={"whatsapp_from": None},  # the worker sends SMS only
                task_runner="celery",
                redis_url=REDIS_URL,
                redis_namespace=namespace,
            )
        )
        # The hub must be listening on the status bus before a worker reports anything.
        channel = status_channel(namespace)

        async def hub_subscribed() -> bool:
            counts = dict(await redis.pubsub_numsub(channel))
            return int(counts.get(channel.encode(), 0)) >= 1

        await until(hub_subscribed, "the hub to subscribe to the status bus")
        log_path = tmp_path / "worker.log"
        worker = _start_worker(
            hub.settings.database_url, twilio.url, namespace, tmp_path, log_path, worker_args
        )
        stack.push_async_callback(_stop_worker, worker)
        scaled = Scaled(hub, twilio, worker, log_path, namespace)
        try:
            yield scaled
        except BaseException:
            print("--- servicehub worker output ---\n" + scaled.worker_output())
            raise


def _start_worker(
    database_url: str,
    twilio_url: str,
    namespace: str,
    tmp_path: Path,
    log_path: Path,
    args: tuple[str, ...],
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEHUB_")}
    env.update(
        {
            "SERVICEHUB_DATA_DIR": str(tmp_path / "worker"),
            "SERVICEHUB_DATABASE_URL": database_url,
            "SERVICEHUB_TASK_RUNNER": "celery",
            "SERVICEHUB_REDIS_URL": REDIS_URL,
            "SERVICEHUB_REDIS_NAMESPACE": namespace,
            "SERVICEHUB_PUBLIC_URL": PUBLIC_URL,
            "SERVICEHUB_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "SERVICEHUB_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SERVICEHUB_TWILIO_SMS_FROM": SMS_NUMBER,
            "SERVICEHUB_TWILIO_API_URL": twilio_url,
            "SERVICEHUB_OUTBOX_MAX_ATTEMPTS": str(TEST_OUTBOX.max_attempts),
            "SERVICEHUB_OUTBOX_BACKOFF_SECONDS": str(TEST_OUTBOX.backoff_seconds),
            "SERVICEHUB_OUTBOX_BACKOFF_MAX_SECONDS": str(TEST_OUTBOX.backoff_max_seconds),
            "SERVICEHUB_OUTBOX_POLL_SECONDS": str(TEST_OUTBOX.poll_seconds),
        }
    )
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub",
                "worker",
                "--loglevel",
                "INFO",
                *(args or ("--pool", "solo")),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (finish the task in hand), polled so the fake Twilio keeps answering."""
    worker.terminate()

    async def exited() -> bool:
        return worker.poll() is not None

    try:
        await until(exited, "the worker to stop")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)


async def _forget_namespace(redis: aioredis.Redis, namespace: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{namespace}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def accepted_sms_conversation(scaled: Scaled, li: ConsoleClient) -> int:
    """Wang asks for a person by SMS and agent Li takes the conversation."""
    form = await send_sms(scaled.hub, WANG, "转人工")
    [inbound] = await messages(scaled.hub, channel_message_id=form["MessageSid"])
    await li.offer_for(inbound.conversation_id)
    await li.ok("accept", {"conversation_id": inbound.conversation_id})
    return inbound.conversation_id


# -- the tests ------------------------------------------------------------------------------------


async def test_the_worker_sends_the_reply_and_the_console_sees_it_sent(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with scaled_hub(demo_template, tmp_path, embedders) as scaled:
        hub, twilio = scaled.hub, scaled.twilio
        # The hub runs no outbox runner of its own: only the worker sends.
        assert hub.hub.celery is not None
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "outbox"]
        bus = aioredis.Redis.from_url(REDIS_URL)
        li = await console(hub, "agent.li")
        try:
            async with bus.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(status_channel(scaled.namespace))
                conversation_id = await accepted_sms_conversation(scaled, li)
                await twilio.next_where(lambda m: "李敏" in m.body)  # "Li has joined"

                reply = await li.send(conversation_id, "王先生您好，您的理财12月18日到期。")
                assert reply["delivery_status"] == "pending"
                sent = await twilio.next_where(lambda m: "12月18日" in m.body)
                assert (sent.to, sent.sender) == (WANG, SMS_NUMBER)
                stored = await wait_status(hub, reply["id"], DeliveryStatus.SENT)
                assert stored.provider_message_id == sent.sid
                # The worker's outcome reaches the agent's console through the hub.
                shown = await status_shown(li, reply["id"], "sent")
                assert shown["delivery_error"] is None
                # ... and is on the bus for every other hub process too.
                notice = await next_notice(pubsub, reply["id"], "sent")
                assert notice["conversation_id"] == conversation_id
        finally:
            await li.close()
            await bus.aclose()


async def test_twilio_down_is_retried_with_backoff_then_shown_failed(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with scaled_hub(demo_template, tmp_path, embedders) as scaled:
        hub, twilio = scaled.hub, scaled.twilio
        li = await console(hub, "agent.li")
        try:
            conversation_id = await accepted_sms_conversation(scaled, li)
            await twilio.next_where(lambda m: "李敏" in m.body)
            twilio.fail_status = 500
            attempts_before = twilio.attempts
            reply = await li.send(conversation_id, "请稍等，我帮您查一下。")
            assert "500" in await retried_then_failed(li, reply["id"])
        finally:
            await li.close()
        stored = await wait_status(hub, reply["id"], DeliveryStatus.FAILED)
        assert stored.delivery_error is not None and "500" in stored.delivery_error
        entry = await outbox_entry(hub, reply["id"])
        assert entry.status == "failed" and entry.attempts == TEST_OUTBOX.max_attempts
        # Every attempt reached Twilio, and none after the last.
        assert twilio.attempts - attempts_before == TEST_OUTBOX.max_attempts


async def test_a_message_enqueued_twice_is_sent_once_and_a_lost_notice_delays_nothing(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    # Two worker threads, so the two passes the two notices ask for really race for the row.
    args = ("--pool", "threads", "--concurrency", "2")
    async with scaled_hub(demo_template, tmp_path, embedders, *args) as scaled:
        hub, twilio = scaled.hub, scaled.twilio
        form = await send_sms(hub, WANG, ANSWERABLE)
        await twilio.wait_for(1)  # the bot's answer, sent by the worker
        [inbound] = await messages(hub, channel_message_id=form["MessageSid"])
        outbox = hub.hub.outbox
        assert outbox is not None
        address = CustomerAddress("sms", WANG)
        twice = await committed_reply(hub, inbound.conversation_id, "您的卡已挂失。")
        await asyncio.gather(
            outbox.enqueue(to_outbound(twice, address)),
            outbox.enqueue(to_outbound(twice, address)),
        )
        # A later message of the same conversation goes out only after the first one: once
        # it has arrived, every send of the first has happened.
        after = await committed_reply(hub, inbound.conversation_id, "还有什么可以帮您？")
        await outbox.enqueue(to_outbound(after, address))
        await twilio.next_where(lambda m: m.body == "还有什么可以帮您？")
        assert [m.body for m in twilio.sent].count("您的卡已挂失。") == 1
        entry = await outbox_entry(hub, twice.id)
        assert entry.status == "sent" and entry.attempts == 1
        assert (await wait_status(hub, twice.id, DeliveryStatus.SENT)).provider_message_id

        # The rows are the truth: a row whose task message was lost (Redis dropped it, say)
        # is sent all the same, by the periodic pass.
        async def lost() -> None:
            return None

        outbox.notify = lost
        quiet = await committed_reply(hub, inbound.conversation_id, "您的申请已受理。")
        await outbox.enqueue(to_outbound(quiet, address))
        sent = await twilio.next_where(lambda m: m.body == "您的申请已受理。")
        assert (await wait_status(hub, quiet.id, DeliveryStatus.SENT)).provider_message_id == (
            sent.sid
        )


# -- settings and the command ---------------------------------------------------------------------


def test_celery_mode_without_redis_fails_at_start_up_saying_what_to_set() -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings({"SERVICEHUB_TASK_RUNNER": "celery"})
    assert "SERVICEHUB_REDIS_URL" in error.value.message
    with pytest.raises(ConfigurationError) as error:
        load_settings({"SERVICEHUB_TASK_RUNNER": "rq"})
    assert "inprocess or celery" in error.value.message
    scaled = load_settings(
        {"SERVICEHUB_TASK_RUNNER": "celery", "SERVICEHUB_REDIS_URL": "redis://redis:6379/1"}
    )
    assert scaled.uses_celery and outbox_queue(scaled) == "servicehub.outbox"
    assert not load_settings({}).uses_celery


def test_the_worker_command_explains_itself_and_refuses_the_embedded_default(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["worker", "--help"])
    assert shown.exit_code == 0 and "Celery worker" in shown.output
    assert "--concurrency" in shown.output and "--loglevel" in shown.output
    refused = runner.invoke(main, ["worker"], env={"SERVICEHUB_DATA_DIR": str(tmp_path)})
    assert refused.exit_code == 1
    assert "SERVICEHUB_TASK_RUNNER=celery" in refused.output


# -- helpers --------------------------------------------------------------------------------------


async def next_notice(pubsub: Any, message_id: int, status: str) -> dict[str, Any]:
    """The status bus's notice that `message_id` reached `status`."""
    async with asyncio.timeout(DEADLINE):
        while True:
            item = await pubsub.get_message(timeout=1.0)
            if item is None:
                continue
            body = json.loads(item["data"])
            if body["message_id"] == message_id and body["delivery_status"] == status:
                return dict(body)


async def outbox_entry(hub: RunningHub, message_id: int) -> OutboxEntry:
    async with hub.hub.database.read() as session:
        entry = await session.scalar(
            select(OutboxEntry).where(OutboxEntry.message_id == message_id)
        )
    assert entry is not None
    return entry
