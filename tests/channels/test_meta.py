"""WhatsApp Cloud and Messenger end to end: signed webhooks in, the fake Graph API out.

Webhooks are built as Meta builds them and signed with the app secret; replies go to a
local fake of the Graph API that checks tokens and fields the way the real one does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from hub.channel_settings import MetaSettings, WhatsAppTemplate, load_meta_settings
from hub.clock import utcnow
from hub.domain import Direction
from hub.errors import ConfigurationError
from hub.storage.models import Conversation, Customer, Identity
from knowledge.embedding import Embedder
from tests.channels.fakes_meta import (
    APP_SECRET,
    GRAPH_VERSION,
    PAGE_TOKEN,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WHATSAPP_TOKEN,
    FakeGraph,
    fake_graph,
    messenger_text,
    messenger_webhook,
    post_webhook,
    whatsapp_status,
    whatsapp_text,
    whatsapp_webhook,
)
from tests.channels.queries import deliver_until_status, message_count, messages, stored_message
from tests.conftest import RunningHub, copy_template, hub_settings, run_hub
from tests.console.routing_helpers import MANUAL_TIMERS, console

WANG_PHONE = "8613800001001"  # the demo customer C1001, known on SMS and voice


def meta_settings(graph: FakeGraph, **changes: Any) -> MetaSettings:
    settings = MetaSettings(
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        graph_url=graph.url,
        graph_version=GRAPH_VERSION,
        whatsapp_phone_number_id=PHONE_NUMBER_ID,
        whatsapp_token=WHATSAPP_TOKEN,
        whatsapp_window_template=WhatsAppTemplate("service_followup", "zh_CN"),
        messenger_page_token=PAGE_TOKEN,
    )
    return replace(settings, **changes)


@asynccontextmanager
async def meta_hub(
    template: Path, tmp_path: Path, embedders: list[Embedder], **changes: Any
) -> AsyncIterator[tuple[RunningHub, FakeGraph]]:
    async with fake_graph() as graph:
        data_dir = copy_template(template, tmp_path / "data")
        settings = hub_settings(
            data_dir, routing=MANUAL_TIMERS, meta=meta_settings(graph, **changes)
        )
        async with run_hub(settings, embedders) as hub:
            yield hub, graph


def new_wamid() -> str:
    return "wamid.HBgN" + uuid.uuid4().hex.upper()


# -- the handshake and bad input ----------------------------------------------------------------


async def test_the_verification_handshake_echoes_the_challenge_only_for_our_token(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with (
        meta_hub(demo_template, tmp_path, embedders) as (hub, _),
        aiohttp.ClientSession() as http,
    ):
        for channel in ("whatsapp_cloud", "messenger"):
            url = f"{hub.base_url}/channels/{channel}/webhook"
            good = {
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1158201444",
            }
            async with http.get(url, params=good) as response:
                assert response.status == 200
                assert await response.text() == "1158201444"
            async with http.get(url, params={**good, "hub.verify_token": "guess"}) as response:
                assert response.status == 403
                assert (await response.json())["code"] == "forbidden"
            async with http.get(url, params={**good, "hub.mode": "unsubscribe"}) as response:
                assert response.status == 403


async def test_bad_signatures_are_refused_and_nothing_is_stored(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        before = await message_count(hub)
        payload = whatsapp_webhook([whatsapp_text(WANG_PHONE, "你好", new_wamid())])
        status, body = await post_webhook(
            hub.base_url, "whatsapp_cloud", payload, secret="other-secret"
        )
        assert status == 403 and body["code"] == "forbidden"
        status, body = await post_webhook(hub.base_url, "whatsapp_cloud", payload, secret=None)
        assert status == 403 and body["code"] == "forbidden"
        status, _ = await post_webhook(
            hub.base_url, "whatsapp_cloud", payload, signature="sha1=" + "0" * 40
        )
        assert status == 403
        ms_payload = messenger_webhook([messenger_text("6024583850934771", "hi", "m_bad")])
        status, _ = await post_webhook(hub.base_url, "messenger", ms_payload, secret="nope")
        assert status == 403
        assert await message_count(hub) == before
        assert graph.sent == []


async def test_payloads_not_from_meta_are_400_and_ignored_events_200(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        before = await message_count(hub)
        for payload in ({"hello": "world"}, [1, 2], {"object": "page", "entry": "x"}):
            status, body = await post_webhook(hub.base_url, "whatsapp_cloud", payload)
            assert status == 400, body
            assert body["code"] == "invalid_input" and body["message"]
        status, body = await post_webhook(hub.base_url, "messenger", b"not json")
        assert status == 400 and body["code"] == "invalid_input"
        # A Messenger payload posted to the WhatsApp webhook is not WhatsApp's.
        wrong = messenger_webhook([messenger_text("6024583850934771", "hi", "m_x")])
        status, _ = await post_webhook(hub.base_url, "whatsapp_cloud", wrong)
        assert status == 400

        reaction = {
            "from": WANG_PHONE,
            "id": new_wamid(),
            "timestamp": str(int(time.time())),
            "type": "reaction",
            "reaction": {"message_id": new_wamid(), "emoji": "👍"},
        }
        ignored = [
            whatsapp_webhook([reaction]),
            whatsapp_webhook([whatsapp_text(WANG_PHONE, "hi", new_wamid())], phone_number_id="999"),
            whatsapp_webhook(statuses=[whatsapp_status(new_wamid(), "delivered", WANG_PHONE)]),
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "1",
                        "changes": [
                            {
                                "field": "message_template_status_update",
                                "value": {"event": "APPROVED"},
                            }
                        ],
                    }
                ],
            },
        ]
        for payload in ignored:
            status, body = await post_webhook(hub.base_url, "whatsapp_cloud", payload)
            assert status == 200, body
        echo = messenger_webhook(
            [messenger_text("6024583850934771", "our reply", "m_echo", echo=True)]
        )
        status, _ = await post_webhook(hub.base_url, "messenger", echo)
        assert status == 200
        await hub.hub.tasks.wait_idle()
        assert await message_count(hub) == before
        assert graph.sent == []


# -- WhatsApp Cloud ---------------------------------------------------------------------------


async def test_whatsapp_question_is_answered_once_and_receipts_update_the_status(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        wamid = new_wamid()
        payload = whatsapp_webhook([whatsapp_text(WANG_PHONE, "信用卡年费怎么收？", wamid)])
        status, body = await post_webhook(hub.base_url, "whatsapp_cloud", payload)
        assert status == 200 and body["accepted"] == 1
        # Meta redelivers: the same webhook again stores nothing new and answers nothing new.
        status, _ = await post_webhook(hub.base_url, "whatsapp_cloud", payload)
        assert status == 200

        sent = await graph.wait_for(1)
        await hub.hub.tasks.wait_idle()
        stored_messages = await messages(hub, channel="whatsapp_cloud")
        inbound = [m for m in stored_messages if m.direction == Direction.INBOUND]
        assert [m.channel_message_id for m in inbound] == [wamid]
        replies = [m for m in stored_messages if m.direction == Direction.OUTBOUND]
        assert replies and sent[0].to == WANG_PHONE
        assert sent[0].body["type"] == "text"
        assert sent[0].text is not None and sent[0].text.startswith(replies[0].text[:20])
        first = await deliver_until_status(hub, replies[0].id, "sent")
        assert first.provider_message_id == sent[0].message_id
        assert len(graph.sent) == len(replies)

        # The customer is the demo customer with that number on SMS and voice.
        async with hub.hub.database.read() as session:
            conversation = await session.get(Conversation, inbound[0].conversation_id)
            assert conversation is not None
            customer = await session.get(Customer, conversation.customer_id)
            identity = await session.scalar(
                select(Identity).where(Identity.channel == "whatsapp_cloud")
            )
        assert customer is not None and customer.external_id == "C1001"
        assert identity is not None and identity.address == "+" + WANG_PHONE

        # Delivery receipts move the status forward, never back.
        receipt = whatsapp_webhook(
            statuses=[whatsapp_status(sent[0].message_id, "delivered", WANG_PHONE)]
        )
        status, body = await post_webhook(hub.base_url, "whatsapp_cloud", receipt)
        assert status == 200 and body["statuses"] == 1
        assert (await stored_message(hub, first.id)).delivery_status == "delivered"
        late = whatsapp_webhook(statuses=[whatsapp_status(sent[0].message_id, "sent", WANG_PHONE)])
        await post_webhook(hub.base_url, "whatsapp_cloud", late)
        read = whatsapp_webhook(statuses=[whatsapp_status(sent[0].message_id, "read", WANG_PHONE)])
        await post_webhook(hub.base_url, "whatsapp_cloud", read)
        assert (await stored_message(hub, first.id)).delivery_status == "delivered"


async def test_a_failed_receipt_marks_the_message_failed_with_metas_reason(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        payload = whatsapp_webhook([whatsapp_text("8613900002002", "你好", new_wamid())])
        await post_webhook(hub.base_url, "whatsapp_cloud", payload)
        sent = (await graph.wait_for(1))[0]
        [reply, *_] = await messages(hub, channel="whatsapp_cloud", direction=Direction.OUTBOUND)
        await deliver_until_status(hub, reply.id, "sent")
        failed = whatsapp_webhook(
            statuses=[whatsapp_status(sent.message_id, "failed", "8613900002002")]
        )
        status, _ = await post_webhook(hub.base_url, "whatsapp_cloud", failed)
        assert status == 200
        after = await stored_message(hub, reply.id)
        assert after.delivery_status == "failed"
        assert after.delivery_error is not None and "131026" in after.delivery_error


async def test_a_batch_of_entries_is_taken_apart(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, _):
        one = whatsapp_webhook([whatsapp_text("8613900003003", "你好", new_wamid())])
        two = whatsapp_webhook(
            [
                whatsapp_text("8613900004004", "你好", new_wamid()),
                whatsapp_text("8613900004004", "在吗", new_wamid()),
            ]
        )
        batch = {"object": "whatsapp_business_account", "entry": one["entry"] + two["entry"]}
        status, body = await post_webhook(hub.base_url, "whatsapp_cloud", batch)
        assert status == 200 and body["accepted"] == 3
        await hub.hub.tasks.wait_idle()
        inbound = await messages(hub, channel="whatsapp_cloud", direction=Direction.INBOUND)
        assert len(inbound) == 3
        assert len({m.conversation_id for m in inbound}) == 2


async def test_outside_the_24_hour_window_a_reply_goes_out_as_the_approved_template(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        # Meta delivered a message the customer wrote 25 hours ago (a long outage, say).
        old = time.time() - 25 * 3600
        payload = whatsapp_webhook([whatsapp_text("8613900005005", "你好", new_wamid(), old)])
        await post_webhook(hub.base_url, "whatsapp_cloud", payload)
        sent = (await graph.wait_for(1))[0]
        assert sent.body["type"] == "template"
        template = sent.body["template"]
        assert template["name"] == "service_followup"
        assert template["language"] == {"code": "zh_CN"}
        parameter = template["components"][0]["parameters"][0]["text"]
        [reply, *_] = await messages(hub, channel="whatsapp_cloud", direction=Direction.OUTBOUND)
        assert parameter == " ".join(reply.text.split())
        await deliver_until_status(hub, reply.id, "sent")


async def test_outside_the_window_without_a_template_the_reply_fails_saying_why(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders, whatsapp_window_template=None) as (
        hub,
        graph,
    ):
        old = time.time() - 25 * 3600
        payload = whatsapp_webhook([whatsapp_text("8613900006006", "你好", new_wamid(), old)])
        await post_webhook(hub.base_url, "whatsapp_cloud", payload)
        await hub.hub.tasks.wait_idle()
        [reply, *_] = await messages(hub, channel="whatsapp_cloud", direction=Direction.OUTBOUND)
        failed = await deliver_until_status(hub, reply.id, "failed")
        assert failed.delivery_error is not None
        assert "24-hour" in failed.delivery_error and "template" in failed.delivery_error
        assert graph.sent == []


async def test_whatsapp_handoff_then_the_agents_reply_reaches_the_customer(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        li = await console(hub, "agent.li")
        payload = whatsapp_webhook([whatsapp_text("8613900007007", "转人工", new_wamid())])
        await post_webhook(hub.base_url, "whatsapp_cloud", payload)
        offer = await li.offer_for()
        conversation_id = offer["conversation"]["id"]
        await li.ok("accept", {"conversation_id": conversation_id})
        reply = await li.send(conversation_id, "您好，我是李敏，请问有什么可以帮您？")
        got = await graph.next_where(lambda m: m.text == "您好，我是李敏，请问有什么可以帮您？")
        assert got.to == "8613900007007"
        await li.next(
            "message_status", lambda s: s["id"] == reply["id"] and s["delivery_status"] == "sent"
        )
        await li.close()


async def test_the_graph_api_down_is_retried_then_the_reply_is_marked_failed(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        graph.fail_status = 503
        payload = whatsapp_webhook([whatsapp_text("8613900008008", "你好", new_wamid())])
        await post_webhook(hub.base_url, "whatsapp_cloud", payload)
        await hub.hub.tasks.wait_idle()
        [reply, *_] = await messages(hub, channel="whatsapp_cloud", direction=Direction.OUTBOUND)
        outbox = hub.hub.outbox
        assert outbox is not None
        # Play the clock forward through every backoff instead of sleeping.
        later = utcnow()
        for _ in range(outbox.settings.max_attempts + 2):
            later += timedelta(seconds=outbox.settings.backoff_max_seconds * 2)
            await outbox.deliver_due(now=later)
        failed = await stored_message(hub, reply.id)
        assert failed.delivery_status == "failed"
        assert failed.delivery_error is not None and "503" in failed.delivery_error
        assert graph.sent == []


# -- Messenger ----------------------------------------------------------------------------------


async def test_messenger_question_is_answered_and_the_psid_stays_its_own_customer(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        psid = "6024583850934771"
        payload = messenger_webhook(
            [messenger_text(psid, "信用卡年费怎么收？", "m_AG5Hz2Uq7tuwNEhXfYY")]
        )
        status, body = await post_webhook(hub.base_url, "messenger", payload)
        assert status == 200 and body["accepted"] == 1
        status, _ = await post_webhook(hub.base_url, "messenger", payload)
        assert status == 200
        sent = (await graph.wait_for(1))[0]
        assert sent.kind == "messenger" and sent.to == psid
        assert sent.body["messaging_type"] == "RESPONSE"
        await hub.hub.tasks.wait_idle()
        stored_messages = await messages(hub, channel="messenger")
        assert len([m for m in stored_messages if m.direction == Direction.INBOUND]) == 1
        reply = next(m for m in stored_messages if m.direction == Direction.OUTBOUND)
        await deliver_until_status(hub, reply.id, "sent")
        # A delivery event names the mids it covers.
        delivery = messenger_webhook(
            [
                {
                    "sender": {"id": psid},
                    "recipient": {"id": "1234567890123"},
                    "timestamp": int(time.time() * 1000),
                    "delivery": {"mids": [sent.message_id], "watermark": int(time.time() * 1000)},
                }
            ]
        )
        status, body = await post_webhook(hub.base_url, "messenger", delivery)
        assert status == 200 and body["statuses"] == 1
        assert (await stored_message(hub, reply.id)).delivery_status == "delivered"
        async with hub.hub.database.read() as session:
            identity = await session.scalar(
                select(Identity).where(Identity.channel == "messenger", Identity.address == psid)
            )
            assert identity is not None and identity.verified is False
            customer = await session.get(Customer, identity.customer_id)
        assert customer is not None and customer.external_id is None


async def test_messenger_handoff_then_the_agents_reply_reaches_the_customer(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        li = await console(hub, "agent.li")
        psid = "7024583850934772"
        payload = messenger_webhook([messenger_text(psid, "转人工", "m_handoff1")])
        await post_webhook(hub.base_url, "messenger", payload)
        offer = await li.offer_for()
        conversation_id = offer["conversation"]["id"]
        await li.ok("accept", {"conversation_id": conversation_id})
        await li.send(conversation_id, "您好，我是李敏。")
        got = await graph.next_where(lambda m: m.text == "您好，我是李敏。")
        assert got.to == psid and got.kind == "messenger"
        await li.close()


async def test_messenger_after_24_hours_only_an_agents_reply_goes_out_with_the_human_agent_tag(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with meta_hub(demo_template, tmp_path, embedders) as (hub, graph):
        li = await console(hub, "agent.li")
        psid = "8024583850934773"
        event = messenger_text(psid, "转人工", "m_late_handoff")
        event["timestamp"] = int((time.time() - 30 * 3600) * 1000)  # written 30 hours ago
        await post_webhook(hub.base_url, "messenger", messenger_webhook([event]))
        offer = await li.offer_for()
        conversation_id = offer["conversation"]["id"]
        notice = next(m for m in await messages(hub, channel="messenger") if m.handoff)
        failed = await deliver_until_status(hub, notice.id, "failed")
        assert failed.delivery_error is not None and "24-hour" in failed.delivery_error
        await li.ok("accept", {"conversation_id": conversation_id})
        await li.send(conversation_id, "抱歉久等，我是李敏。")
        got = await graph.next_where(lambda m: m.text == "抱歉久等，我是李敏。")
        assert got.body["messaging_type"] == "MESSAGE_TAG" and got.body["tag"] == "HUMAN_AGENT"
        await li.close()


# -- settings -----------------------------------------------------------------------------------


def test_half_a_meta_configuration_fails_at_start_up_saying_what_to_set() -> None:
    def getter(values: dict[str, str]) -> Any:
        return lambda name: values.get(name)

    assert load_meta_settings(getter({})) is None
    with pytest.raises(ConfigurationError, match="SERVICEHUB_META_VERIFY_TOKEN"):
        load_meta_settings(getter({"META_APP_SECRET": "s"}))
    with pytest.raises(ConfigurationError, match="SERVICEHUB_META_WHATSAPP_TOKEN"):
        load_meta_settings(
            getter(
                {
                    "META_APP_SECRET": "s",
                    "META_VERIFY_TOKEN": "v",
                    "META_WHATSAPP_PHONE_NUMBER_ID": "1",
                }
            )
        )
    with pytest.raises(ConfigurationError, match="template_name:language"):
        load_meta_settings(
            getter(
                {
                    "META_APP_SECRET": "s",
                    "META_VERIFY_TOKEN": "v",
                    "META_MESSENGER_PAGE_TOKEN": "p",
                    "META_WHATSAPP_WINDOW_TEMPLATE": "no-language",
                }
            )
        )
    loaded = load_meta_settings(
        getter(
            {
                "META_APP_SECRET": "s",
                "META_VERIFY_TOKEN": "v",
                "META_WHATSAPP_PHONE_NUMBER_ID": "1",
                "META_WHATSAPP_TOKEN": "t",
                "META_WHATSAPP_WINDOW_TEMPLATE": "service_followup:zh_CN",
            }
        )
    )
    assert loaded is not None and loaded.whatsapp_enabled and not loaded.messenger_enabled
    assert loaded.whatsapp_window_template == WhatsAppTemplate("service_followup", "zh_CN")
