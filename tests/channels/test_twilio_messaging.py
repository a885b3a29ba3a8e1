"""SMS and WhatsApp over Twilio, end to end: signed webhooks in, the fake Twilio API out.

Webhooks are the forms Twilio posts, signed with Twilio's algorithm for the public URL (the
hub sits behind a reverse proxy); replies leave through the outbox to a local fake of
Twilio's Messages API that checks credentials and fields the way Twilio does. Nothing here
sleeps for a fixed time or measures one: tests wait for what a customer or the database sees.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from hub.domain import Author, DeliveryStatus, Direction
from hub.errors import ConfigurationError
from hub.settings import load_settings
from hub.storage.models import Conversation, Customer, Message, OutboxEntry
from hub.twilio_settings import TwilioSettings
from knowledge.embedding import Embedder
from tests.channels.console_status import retried_then_failed, status_shown
from tests.channels.fakes_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    SMS_NUMBER,
    WHATSAPP_SENDER,
    inbound_sms,
    inbound_whatsapp,
    post_webhook,
    report_status,
    sign,
)
from tests.channels.hubs import TEST_OUTBOX, twilio_hub
from tests.channels.queries import (
    committed_reply,
    customer_of,
    message_count,
    messages,
    wait_status,
)
from tests.conftest import ADMIN_TOKEN, RunningHub
from tests.console.routing_helpers import console

MESSAGES = "/channels/twilio/messages"
STATUS = "/channels/twilio/status"
WANG = "+8613800001001"  # demo customer C1001, known on SMS
CHEN = "+8613800001002"  # demo customer C1002, known on voice only
ANSWERABLE = "信用卡丢了怎么挂失"

BOTH_DATABASES = pytest.mark.parametrize(
    "database_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)


async def sent_as(hub: RunningHub, provider_message_id: str) -> Message:
    """The stored message Twilio accepted as `provider_message_id` (recorded just after)."""
    async with asyncio.timeout(60):
        while True:
            found = await messages(hub, provider_message_id=provider_message_id)
            if found:
                return found[0]
            await asyncio.sleep(0.05)


async def send_sms(hub: RunningHub, sender: str, body: str, **extra: str) -> dict[str, str]:
    form = inbound_sms(sender, body, **extra)
    status, text = await post_webhook(hub.base_url, MESSAGES, form)
    assert status == 200, text
    assert text.endswith("<Response></Response>")  # TwiML: nothing to say now
    return form


# -- the bot answers by SMS and WhatsApp ----------------------------------------------------------


@BOTH_DATABASES
async def test_sms_question_is_answered_by_sms_and_receipts_update_the_status(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder], database_kind: str
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders, database_kind) as (hub, twilio):
        form = await send_sms(hub, "+86 138 0000 1001", ANSWERABLE)

        sent = (await twilio.wait_for(1))[0]
        assert sent.to == WANG and sent.sender == SMS_NUMBER
        assert "挂失" in sent.body
        assert sent.status_callback == PUBLIC_URL + STATUS

        [inbound] = await messages(hub, channel_message_id=form["MessageSid"])
        assert inbound.channel == "sms" and inbound.direction == Direction.INBOUND
        reply = await sent_as(hub, sent.sid)
        assert reply.author == Author.BOT and reply.conversation_id == inbound.conversation_id
        await wait_status(hub, reply.id, DeliveryStatus.SENT)
        async with hub.hub.database.read() as session:
            conversation = await session.get(Conversation, inbound.conversation_id)
            assert conversation is not None
            customer = await session.get(Customer, conversation.customer_id)
        assert customer is not None and customer.external_id == "C1001"

        status, _ = await report_status(hub.base_url, sent, "delivered")
        assert status == 200
        await wait_status(hub, reply.id, DeliveryStatus.DELIVERED)
        # A late "sent" never hides "delivered"; a step we do not track is answered 200.
        assert (await report_status(hub.base_url, sent, "sent"))[0] == 200
        assert (await report_status(hub.base_url, sent, "sending"))[0] == 200
        assert (await messages(hub, id=reply.id))[0].delivery_status == DeliveryStatus.DELIVERED


async def test_one_phone_on_whatsapp_and_sms_is_one_customer_and_media_is_kept(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        photo = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
        form = inbound_whatsapp(
            CHEN, ANSWERABLE, NumMedia="1", MediaUrl0=photo, MediaContentType0="image/jpeg"
        )
        status, text = await post_webhook(hub.base_url, MESSAGES, form)
        assert status == 200, text
        on_whatsapp = await twilio.next_where(lambda m: m.to == f"whatsapp:{CHEN}")
        assert on_whatsapp.sender == WHATSAPP_SENDER and "挂失" in on_whatsapp.body
        [inbound] = await messages(hub, channel_message_id=form["MessageSid"])
        assert inbound.channel == "whatsapp" and inbound.media_urls == [photo]

        await send_sms(hub, CHEN, ANSWERABLE)
        on_sms = await twilio.next_where(lambda m: m.to == CHEN)
        assert on_sms.sender == SMS_NUMBER

        chen = (await customer_of(hub, "voice", CHEN)).id  # the demo knows C1002 by phone call
        assert (await customer_of(hub, "whatsapp", CHEN)).id == chen
        assert (await customer_of(hub, "sms", CHEN)).id == chen


# -- a person takes over -------------------------------------------------------------------------


async def test_handoff_by_sms_then_the_agents_reply_reaches_the_phone(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        li = await console(hub, "agent.li")
        try:
            form = await send_sms(hub, WANG, "转人工")
            [inbound] = await messages(hub, channel_message_id=form["MessageSid"])
            conversation_id = inbound.conversation_id
            offer = await li.offer_for(conversation_id)
            assert offer["conversation"]["channel"] == "sms"
            # The customer was told by SMS that a person is coming.
            [notice] = await messages(hub, conversation_id=conversation_id, handoff=True)
            sent = await wait_status(hub, notice.id, DeliveryStatus.SENT)
            assert any(m.sid == sent.provider_message_id and m.to == WANG for m in twilio.sent)

            await li.ok("accept", {"conversation_id": conversation_id})
            joined = await twilio.next_where(lambda m: "李敏" in m.body)
            assert joined.to == WANG

            reply = await li.send(conversation_id, "王先生您好，您的理财12月18日到期。")
            delivered = await twilio.next_where(lambda m: "12月18日" in m.body)
            assert delivered.to == WANG and delivered.sender == SMS_NUMBER
            # The console hears that the reply went out.
            status = await status_shown(li, reply["id"], "sent")
            assert status["delivery_error"] is None

            # Twilio hiccups: the first reply is retried, and the second waits for it, so the
            # customer reads them in the order the agent wrote them.
            twilio.fail_status = 503
            attempts = twilio.attempts
            await li.send(conversation_id, "第一条：请您核对一下身份证号后四位。")
            await li.send(conversation_id, "第二条：核对后我为您办理续作。")
            await twilio.wait_attempts(attempts + 1)
            twilio.fail_status = None
            second = await twilio.next_where(lambda m: m.body.startswith("第二条"))
            first = await twilio.next_where(lambda m: m.body.startswith("第一条"))
            assert twilio.sent.index(first) < twilio.sent.index(second)

            # An internal note never leaves the hub.
            before = len(twilio.sent)
            await li.ok(
                "note",
                {"conversation_id": conversation_id, "text": "客户很急", "client_id": "note-1"},
            )
            await li.send(conversation_id, "还有其他问题吗？")
            await twilio.next_where(lambda m: "其他问题" in m.body)
            assert not any("客户很急" in m.body for m in twilio.sent[before:])
        finally:
            await li.close()


# -- idempotency and bad input -------------------------------------------------------------------


async def test_a_webhook_delivered_twice_is_one_message(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        form = await send_sms(hub, WANG, ANSWERABLE)
        await twilio.wait_for(1)
        status, _ = await post_webhook(hub.base_url, MESSAGES, form)  # Twilio retries
        assert status == 200
        assert len(await messages(hub, channel_message_id=form["MessageSid"])) == 1
        await hub.hub.tasks.wait_idle()
        assert hub.hub.outbox is not None
        await hub.hub.outbox.deliver_due()
        assert len(twilio.sent) == 1  # one answer, not two


async def test_bad_signatures_are_refused_and_nothing_is_stored(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        before = await message_count(hub)
        form = inbound_sms(WANG, "转账给我自己")
        # No signature; another account's token; signed for the hub's loopback address
        # (what a proxy-unaware hub would check); a body changed after signing.
        tampered = dict(form, Body="转账给别人")
        refused: list[tuple[dict[str, Any], dict[str, str]]] = [
            ({"token": None}, form),
            ({"token": "someone-elses-auth-token"}, form),
            ({"signed_url": hub.base_url + MESSAGES}, form),
            ({"signature": sign(PUBLIC_URL + MESSAGES, form)}, tampered),
        ]
        for kwargs, params in refused:
            status, text = await post_webhook(hub.base_url, MESSAGES, params, **kwargs)
            assert status == 403, (kwargs, text)
            assert '"code": "forbidden"' in text
        status, _ = await post_webhook(
            hub.base_url,
            STATUS,
            {"MessageSid": "SMx", "MessageStatus": "failed", "AccountSid": ACCOUNT_SID},
            token="someone-elses-auth-token",
        )
        assert status == 403
        assert await message_count(hub) == before
        assert twilio.attempts == 0


async def test_payloads_not_from_twilio_are_400_and_ignored_events_200(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        before = await message_count(hub)
        async with (
            aiohttp.ClientSession() as http,
            http.post(hub.base_url + MESSAGES, json={"text": "hi"}) as response,
        ):
            assert response.status == 400
            body = await response.json()
        assert body["code"] == "invalid_input" and body["message"]
        # Signed correctly, but not a message: no MessageSid, no From.
        status, text = await post_webhook(
            hub.base_url, MESSAGES, {"AccountSid": ACCOUNT_SID, "Body": "hello"}
        )
        assert status == 400 and '"code": "invalid_input"' in text
        # Another Twilio account's request, even if signed with our token, is not ours.
        status, _ = await post_webhook(
            hub.base_url, MESSAGES, inbound_sms(WANG, "hi", AccountSid="AC" + "0" * 32)
        )
        assert status == 400
        # Deliberately ignored, answered 200 so Twilio does not retry: an empty message, our
        # own sender echoed back, a receipt for a message we never sent.
        for params in [
            inbound_sms(WANG, "   "),
            inbound_sms(SMS_NUMBER, "echo"),
            {"MessageSid": "SMunknown", "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID},
        ]:
            status, text = await post_webhook(hub.base_url, MESSAGES, params)
            assert status == 200, text
        status, _ = await post_webhook(
            hub.base_url,
            STATUS,
            {"MessageSid": "SMunknown", "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID},
        )
        assert status == 200
        assert await message_count(hub) == before
        assert twilio.attempts == 0


# -- provider trouble ----------------------------------------------------------------------------


@BOTH_DATABASES
async def test_twilio_down_is_retried_then_marked_failed_and_counted(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder], database_kind: str
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders, database_kind) as (hub, twilio):
        twilio.fail_status = 503
        form = await send_sms(hub, WANG, ANSWERABLE)
        await twilio.wait_attempts(TEST_OUTBOX.max_attempts)
        [inbound] = await messages(hub, channel_message_id=form["MessageSid"])
        replies = await messages(
            hub, conversation_id=inbound.conversation_id, direction=Direction.OUTBOUND
        )
        failed = await wait_status(hub, replies[0].id, DeliveryStatus.FAILED)
        assert failed.delivery_error is not None and "503" in failed.delivery_error
        async with hub.hub.database.read() as session:
            entry = await session.scalar(
                select(OutboxEntry).where(OutboxEntry.message_id == failed.id)
            )
        assert entry is not None and entry.status == "failed"
        assert entry.attempts == TEST_OUTBOX.max_attempts
        assert twilio.sent == []

        # A number Twilio refuses (error 21211) is not retried: it fails on the first try.
        twilio.fail_status = None
        attempts_before = twilio.attempts
        await send_sms(hub, "+1555", "hello")
        async with asyncio.timeout(60):
            while True:
                bad = await messages(hub, channel="sms", delivery_status=DeliveryStatus.FAILED)
                refused = [m for m in bad if "21211" in (m.delivery_error or "")]
                if refused:
                    break
                await asyncio.sleep(0.05)
        await hub.hub.tasks.wait_idle()
        assert twilio.attempts - attempts_before == len(refused)  # one try each

        # Twilio is back: the next reply goes out; metrics count what failed and the retries.
        await send_sms(hub, WANG, ANSWERABLE)
        await twilio.wait_for(1)
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                hub.base_url + "/api/metrics",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as response,
        ):
            metrics = await response.json()
        failed_now = await messages(hub, channel="sms", delivery_status=DeliveryStatus.FAILED)
        sms = metrics["deliveries"]["sms"]
        assert sms["failed"] == len(failed_now) >= 2
        assert sms["retries"] >= TEST_OUTBOX.max_attempts - 1


async def test_an_agent_reply_twilio_cannot_take_shows_failed_in_the_console(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        li = await console(hub, "agent.li")
        try:
            form = await send_sms(hub, WANG, "转人工")
            await twilio.wait_for(1)
            [inbound] = await messages(hub, channel_message_id=form["MessageSid"])
            await li.offer_for(inbound.conversation_id)
            await li.ok("accept", {"conversation_id": inbound.conversation_id})
            await twilio.wait_for(2)  # "joined"

            twilio.fail_status = 500
            reply = await li.send(inbound.conversation_id, "请稍等，我帮您查一下。")
            assert reply["delivery_status"] == "pending"
            assert "500" in await retried_then_failed(li, reply["id"])
        finally:
            await li.close()


async def test_replies_a_crash_left_without_an_outbox_row_are_sent_on_recovery(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        form = await send_sms(hub, WANG, ANSWERABLE)
        await twilio.wait_for(1)
        [inbound] = await messages(hub, channel_message_id=form["MessageSid"])
        # What a crash between the reply's commit and its outbox row leaves behind.
        orphan = await committed_reply(hub, inbound.conversation_id, "还有什么可以帮您？")
        assert hub.hub.outbox is not None
        assert await hub.hub.outbox.recover() == 1
        assert await hub.hub.outbox.recover() == 0  # one row per message, however often
        sent = await twilio.next_where(lambda m: m.body == "还有什么可以帮您？")
        assert (await wait_status(hub, orphan.id, DeliveryStatus.SENT)).provider_message_id == (
            sent.sid
        )


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"SERVICEHUB_TWILIO_AUTH_TOKEN": "x"}, "SERVICEHUB_TWILIO_ACCOUNT_SID"),
        ({"SERVICEHUB_TWILIO_ACCOUNT_SID": ACCOUNT_SID}, "SERVICEHUB_TWILIO_AUTH_TOKEN"),
        (
            {"SERVICEHUB_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "SERVICEHUB_TWILIO_AUTH_TOKEN": "t"},
            "SERVICEHUB_TWILIO_SMS_FROM",
        ),
        (
            {
                "SERVICEHUB_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "SERVICEHUB_TWILIO_AUTH_TOKEN": "t",
                "SERVICEHUB_TWILIO_SMS_FROM": SMS_NUMBER,
            },
            "SERVICEHUB_PUBLIC_URL",
        ),
        ({"SERVICEHUB_OUTBOX_MAX_ATTEMPTS": "0"}, "SERVICEHUB_OUTBOX_MAX_ATTEMPTS"),
    ],
)
def test_half_a_twilio_configuration_fails_at_start_up_saying_what_to_set(
    environ: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings(environ)
    assert says in error.value.message


def test_a_full_twilio_configuration_is_read() -> None:
    settings = load_settings(
        {
            "SERVICEHUB_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "SERVICEHUB_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SERVICEHUB_TWILIO_SMS_FROM": SMS_NUMBER,
            "SERVICEHUB_TWILIO_WHATSAPP_FROM": WHATSAPP_SENDER,
            "SERVICEHUB_PUBLIC_URL": PUBLIC_URL,
            "SERVICEHUB_OUTBOX_BACKOFF_SECONDS": "5",
        }
    )
    assert settings.twilio == TwilioSettings(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        sms_from=SMS_NUMBER,
        whatsapp_from=WHATSAPP_SENDER,
    )
    assert settings.outbox.backoff_seconds == 5.0
