"""WeChat Official Account end to end: signed XML pushes in, passive replies or the fake API out."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from hub.channel_settings import WeChatSettings, load_wechat_settings
from hub.domain import Direction
from hub.errors import ConfigurationError
from hub.storage.models import Customer, Identity
from knowledge.embedding import Embedder
from tests.channels.fakes_wechat import (
    ACCOUNT,
    APP_ID,
    APP_SECRET,
    TOKEN,
    FakeWeChat,
    event_push,
    fake_wechat,
    image_push,
    post_push,
    signed_query,
    text_push,
)
from tests.channels.queries import message_count, messages
from tests.conftest import RunningHub, copy_template, hub_settings, run_hub
from tests.console.routing_helpers import MANUAL_TIMERS, console

# Long enough for a busy test machine; production keeps WeChat's 4.5 s (see channel_settings).
PATIENT = 120.0


@asynccontextmanager
async def wechat_hub(
    template: Path, tmp_path: Path, embedders: list[Embedder], reply_seconds: float
) -> AsyncIterator[tuple[RunningHub, FakeWeChat]]:
    async with fake_wechat() as api:
        wechat = WeChatSettings(
            token=TOKEN,
            app_id=APP_ID,
            app_secret=APP_SECRET,
            api_url=api.url,
            reply_seconds=reply_seconds,
        )
        data_dir = copy_template(template, tmp_path / "data")
        settings = hub_settings(data_dir, routing=MANUAL_TIMERS, wechat=wechat)
        async with run_hub(settings, embedders) as hub:
            yield hub, api


async def settle(hub: RunningHub) -> None:
    """Let the pipeline and the outbox finish what they have (woken by the test, not time)."""
    assert hub.hub.outbox is not None
    for _ in range(3):
        await hub.hub.tasks.wait_idle()
        await hub.hub.outbox.deliver_due()


def reply_of(body: str) -> dict[str, str]:
    root = ElementTree.fromstring(body)
    return {child.tag: child.text or "" for child in root}


def new_openid() -> str:
    return "o" + uuid.uuid4().hex[:27]


def new_msg_id() -> str:
    return str(uuid.uuid4().int % 10**19)


async def test_the_url_check_echoes_echostr_only_with_a_good_signature(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with (
        wechat_hub(demo_template, tmp_path, embedders, PATIENT) as (hub, _),
        aiohttp.ClientSession() as http,
    ):
        url = f"{hub.base_url}/channels/wechat/webhook"
        async with http.get(url, params=signed_query(echostr="5838479218127813673")) as response:
            assert response.status == 200
            assert await response.text() == "5838479218127813673"
        bad = signed_query(token="not-our-token", echostr="1")
        async with http.get(url, params=bad) as response:
            assert response.status == 403
            assert (await response.json())["code"] == "forbidden"
        async with http.get(url, params={"echostr": "1"}) as response:
            assert response.status == 403


async def test_a_quick_answer_is_the_passive_reply(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with wechat_hub(demo_template, tmp_path, embedders, PATIENT) as (hub, api):
        openid, msg_id = new_openid(), new_msg_id()
        status, body = await post_push(
            hub.base_url, text_push(openid, "信用卡年费怎么收？", msg_id), openid=openid
        )
        assert status == 200, body
        reply = reply_of(body)
        assert reply["ToUserName"] == openid and reply["FromUserName"] == ACCOUNT
        assert reply["MsgType"] == "text"
        await settle(hub)
        stored = await messages(hub, channel="wechat")
        inbound = [m for m in stored if m.direction == Direction.INBOUND]
        assert [m.channel_message_id for m in inbound] == [msg_id]
        first = next(m for m in stored if m.direction == Direction.OUTBOUND)
        assert reply["Content"].startswith(first.text)
        assert first.delivery_status == "sent"
        assert first.provider_message_id == f"passive:{msg_id}"
        # Any further reply of the same turn went out as a customer-service message.
        outbound = [m for m in stored if m.direction == Direction.OUTBOUND]
        assert len(api.sent) == len(outbound) - 1

        # WeChat's retry of the same message stores nothing and answers "success".
        status, body = await post_push(
            hub.base_url, text_push(openid, "信用卡年费怎么收？", msg_id), openid=openid
        )
        assert status == 200 and body == "success"
        await settle(hub)
        assert len(await messages(hub, channel="wechat")) == len(stored)

        # The OpenID is a customer of its own, unverified.
        async with hub.hub.database.read() as session:
            identity = await session.scalar(
                select(Identity).where(Identity.channel == "wechat", Identity.address == openid)
            )
            assert identity is not None and identity.verified is False
            customer = await session.get(Customer, identity.customer_id)
        assert customer is not None and customer.external_id is None


async def test_a_late_answer_goes_out_as_a_customer_service_message(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    # reply_seconds=0: the webhook never waits, so the answer is always "later".
    async with wechat_hub(demo_template, tmp_path, embedders, 0.0) as (hub, api):
        openid = new_openid()
        status, body = await post_push(
            hub.base_url, text_push(openid, "信用卡年费怎么收？", new_msg_id()), openid=openid
        )
        assert status == 200 and body == "success"
        sent = await api.next_where(lambda m: m.touser == openid)
        await settle(hub)
        [first, *_] = await messages(hub, channel="wechat", direction=Direction.OUTBOUND)
        assert sent.content.startswith(first.text)
        assert first.delivery_status == "sent"
        assert api.tokens_issued == 1

        # A second message reuses the cached token; a revoked token is fetched again once.
        count = len(api.sent)
        await post_push(hub.base_url, text_push(openid, "你好", new_msg_id()), openid=openid)
        await api.wait_for(count + 1)
        assert api.tokens_issued == 1
        await settle(hub)
        count = len(api.sent)
        api.revoke_tokens()
        await post_push(hub.base_url, text_push(openid, "谢谢", new_msg_id()), openid=openid)
        await api.wait_for(count + 1)
        assert api.tokens_issued == 2


async def test_handoff_then_the_agents_reply_goes_out_as_a_customer_service_message(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with wechat_hub(demo_template, tmp_path, embedders, PATIENT) as (hub, api):
        li = await console(hub, "agent.li")
        openid = new_openid()
        status, body = await post_push(
            hub.base_url, text_push(openid, "转人工", new_msg_id()), openid=openid
        )
        assert status == 200
        assert reply_of(body)["Content"]  # the handoff notice, as the passive reply
        offer = await li.offer_for()
        conversation_id = offer["conversation"]["id"]
        await li.ok("accept", {"conversation_id": conversation_id})
        reply = await li.send(conversation_id, "您好，我是李敏，请问有什么可以帮您？")
        got = await api.next_where(lambda m: m.content == "您好，我是李敏，请问有什么可以帮您？")
        assert got.touser == openid
        await li.next(
            "message_status", lambda s: s["id"] == reply["id"] and s["delivery_status"] == "sent"
        )
        await li.close()


async def test_wechat_refusing_a_message_marks_it_failed_with_the_reason(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with wechat_hub(demo_template, tmp_path, embedders, 0.0) as (hub, api):
        api.fail_errcode = 45015  # the customer's 48 hours are over
        openid = new_openid()
        await post_push(hub.base_url, text_push(openid, "你好", new_msg_id()), openid=openid)
        await settle(hub)
        [reply, *_] = await messages(hub, channel="wechat", direction=Direction.OUTBOUND)
        assert reply.delivery_status == "failed"
        assert reply.delivery_error is not None and "48 hours" in reply.delivery_error
        assert api.sent == []


async def test_bad_signatures_bad_bodies_and_ignored_pushes(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with wechat_hub(demo_template, tmp_path, embedders, PATIENT) as (hub, api):
        before = await message_count(hub)
        openid = new_openid()
        push = text_push(openid, "你好", new_msg_id())
        for query in (signed_query(token="wrong"), {}, {**signed_query(), "nonce": "changed"}):
            status, body = await post_push(hub.base_url, push, query=query)
            assert status == 403 and json.loads(body)["code"] == "forbidden"
        assert await message_count(hub) == before

        for bad in (b'{"text": "hello"}', b"<xml><Content>hi</Content></xml>", b"<html>"):
            status, body = await post_push(hub.base_url, bad)
            assert status == 400, body
            error = json.loads(body)
            assert error["code"] == "invalid_input" and error["message"]
        bomb = b'<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>'
        status, _ = await post_push(hub.base_url, bomb)
        assert status == 400

        # Pushes we deliberately do not handle answer "success" so WeChat does not retry.
        for ignored in (image_push(openid, new_msg_id()), event_push(openid, "unsubscribe")):
            status, body = await post_push(hub.base_url, ignored, openid=openid)
            assert status == 200 and body == "success"
        status, body = await post_push(hub.base_url, event_push(openid, "subscribe"))
        assert status == 200 and "欢迎关注" in reply_of(body)["Content"]
        await settle(hub)
        assert await message_count(hub) == before
        assert api.sent == []


def test_half_a_wechat_configuration_fails_at_start_up_saying_what_to_set() -> None:
    def getter(values: dict[str, str]) -> Any:
        return lambda name: values.get(name)

    full = {"WECHAT_TOKEN": "t", "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET}
    assert load_wechat_settings(getter({})) is None
    with pytest.raises(ConfigurationError, match="SERVICEHUB_WECHAT_APP_SECRET"):
        load_wechat_settings(getter({"WECHAT_TOKEN": "t"}))
    with pytest.raises(ConfigurationError, match="5 seconds"):
        load_wechat_settings(getter({**full, "WECHAT_REPLY_SECONDS": "6"}))
    loaded = load_wechat_settings(getter(full))
    assert loaded == replace(
        WeChatSettings(token="t", app_id=APP_ID, app_secret=APP_SECRET), reply_seconds=4.5
    )
