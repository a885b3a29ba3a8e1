"""The mobile app end to end: `/chat` with the app's identity token, devices, push when closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import func, select

from hub.channel_settings import AppPushSettings, load_app_push_settings
from hub.errors import ConfigurationError
from hub.identity_tokens import issue_identity_token
from hub.storage.models import AppDevice
from knowledge.embedding import Embedder
from tests.channels.fakes_push import PUSH_TOKEN, FakePush, fake_push
from tests.channels.queries import deliver_until_status, messages
from tests.chat_client import ChatClient
from tests.conftest import IDENTITY_SECRET, RunningHub, copy_template, hub_settings, run_hub
from tests.console.helpers import call
from tests.console.routing_helpers import MANUAL_TIMERS, console


class AppClient(ChatClient):
    """The app's side of `/chat`: the same namespace, announced as the app."""

    async def connect(self) -> AppClient:
        auth: dict[str, Any] = {"visitor_id": self.visitor_id, "client": "app"}
        if self.token is not None:
            auth["token"] = self.token
        await self.sio.connect(
            self.base_url, namespaces=["/chat"], auth=auth, transports=["websocket"]
        )
        await self.wait_for(lambda: self.session is not None)
        return self


def app_token(customer: str = "C1001") -> str:
    return issue_identity_token(IDENTITY_SECRET, customer)


@asynccontextmanager
async def app_hub(
    template: Path, tmp_path: Path, embedders: list[Embedder]
) -> AsyncIterator[tuple[RunningHub, FakePush]]:
    async with fake_push() as push:
        data_dir = copy_template(template, tmp_path / "data")
        settings = hub_settings(
            data_dir,
            routing=MANUAL_TIMERS,
            app_push=AppPushSettings(url=push.url, token=PUSH_TOKEN),
        )
        async with run_hub(settings, embedders) as hub:
            yield hub, push


async def register(hub: RunningHub, token: str | None, body: Any) -> tuple[int, Any]:
    return await call(hub, "POST", "/api/app/devices", token=token, json=body)


async def test_the_app_must_bring_its_identity_token(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with app_hub(demo_template, tmp_path, embedders) as (hub, _):
        for token in (None, "not-a-token"):
            client = AppClient(hub.base_url, token=token)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.connect()
            await client.close()


async def test_a_connected_app_gets_the_bot_answer_over_its_socket(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with app_hub(demo_template, tmp_path, embedders) as (hub, push):
        client = await AppClient(hub.base_url, token=app_token()).connect()
        assert client.session is not None and client.session["verified"] is True
        ack = await client.send("信用卡年费怎么收？")
        await client.wait_for(lambda: any(m["author"] != "customer" for m in client.messages))
        stored = await messages(hub, channel="app")
        assert stored[0].id == ack["id"] and stored[0].channel == "app"
        reply = next(m for m in stored if m.direction == "outbound")
        assert client.messages[0]["id"] == reply.id
        await deliver_until_status(hub, reply.id, "sent")
        assert push.sent == []
        await client.close()


async def test_devices_register_only_with_a_valid_identity_token(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with app_hub(demo_template, tmp_path, embedders) as (hub, push):
        device = {"push_token": push.issue_device_token("pixel"), "platform": "android"}
        status, body = await register(hub, None, device)
        assert status == 401 and body["code"] == "unauthenticated"
        status, body = await register(hub, "forged", device)
        assert status == 403 and body["code"] == "forbidden"
        status, body = await register(hub, app_token(), {"push_token": "", "platform": "nokia"})
        assert status == 400 and body["code"] == "invalid_input"
        for _ in range(2):  # the app registers on every start: one row
            status, body = await register(hub, app_token(), device)
            assert status == 201 and body["ok"] is True
        async with hub.hub.database.read() as session:
            rows = list(await session.scalars(select(AppDevice)))
        assert [(r.customer_ref, r.platform) for r in rows] == [("C1001", "android")]
        # Another customer cannot remove it; its owner can.
        status, _ = await call(
            hub, "DELETE", "/api/app/devices", token=app_token("C1002"), json=device
        )
        assert status == 404
        status, _ = await call(hub, "DELETE", "/api/app/devices", token=app_token(), json=device)
        assert status == 200
        async with hub.hub.database.read() as session:
            assert await session.scalar(select(func.count()).select_from(AppDevice)) == 0


async def test_an_agent_reply_to_a_closed_app_goes_out_as_a_push(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with app_hub(demo_template, tmp_path, embedders) as (hub, push):
        li = await console(hub, "agent.li")
        device_token = push.issue_device_token("iphone")
        stale_token = "fcm-uninstalled-token"
        for token, platform in ((device_token, "ios"), (stale_token, "android")):
            status, _ = await register(
                hub, app_token(), {"push_token": token, "platform": platform}
            )
            assert status == 201
        client = await AppClient(hub.base_url, token=app_token()).connect()
        await client.send("转人工")
        await client.wait_for(lambda: any(m["handoff"] for m in client.messages))
        await client.close()  # the customer puts the phone away

        offer = await li.offer_for()
        conversation_id = offer["conversation"]["id"]
        await li.ok("accept", {"conversation_id": conversation_id})
        text = "您好，我是李敏，您的理财产品将于下周到期。"
        reply = await li.send(conversation_id, text)
        pushed = await push.wait_for(2)  # the "joined" notice, then the reply
        notification = next(p for p in pushed if p["data"]["message_id"] == str(reply["id"]))
        assert notification["token"] == device_token
        assert notification["data"]["conversation_id"] == str(conversation_id)
        # Lock screens are public: the reply itself never travels in the notification.
        assert text not in str(notification)
        sent = await deliver_until_status(hub, reply["id"], "sent")
        assert sent.provider_message_id is not None
        assert sent.provider_message_id.startswith("projects/")
        # The push service said the other phone's app is gone: it is forgotten.
        async with hub.hub.database.read() as session:
            tokens = list(await session.scalars(select(AppDevice.push_token)))
        assert tokens == [device_token]

        # Opening the app shows the reply.
        again = await AppClient(hub.base_url, token=app_token()).connect()
        assert any(m["id"] == reply["id"] for m in await again.history())
        await again.close()
        await li.close()


async def test_a_closed_app_without_devices_marks_the_reply_failed_saying_why(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with app_hub(demo_template, tmp_path, embedders) as (hub, push):
        li = await console(hub, "agent.li")
        client = await AppClient(hub.base_url, token=app_token("C1002")).connect()
        await client.send("转人工")
        await client.wait_for(lambda: any(m["handoff"] for m in client.messages))
        await client.close()
        offer = await li.offer_for()
        conversation_id = offer["conversation"]["id"]
        await li.ok("accept", {"conversation_id": conversation_id})
        reply = await li.send(conversation_id, "您好")
        failed = await deliver_until_status(hub, reply["id"], "failed")
        assert failed.delivery_error is not None and "no device" in failed.delivery_error
        assert push.sent == []
        await li.close()


def test_half_an_app_push_configuration_fails_at_start_up() -> None:
    assert load_app_push_settings(lambda _: None) is None
    with pytest.raises(ConfigurationError, match="SERVICEHUB_APP_PUSH_TOKEN"):
        load_app_push_settings({"APP_PUSH_URL": "https://push.example"}.get)
