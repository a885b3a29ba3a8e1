"""The firm's mobile app: in-app chat over `/chat`, push notifications when the app is closed.

The app connects to the web-chat namespace with `auth = {"client": "app", "token": <identity
token issued by the firm's app back end>, "visitor_id": <install id>}`: an app connection is
always a verified customer (address `app:customer:<id>`). It registers its push token with
`POST /api/app/devices` (the same identity token as a bearer token). A reply reaches the
app over its socket while it is connected to this hub; otherwise it goes out as a push
notification through the configured `PushProvider`, and the app reads the reply with
`history` when opened.

Push notifications show on lock screens, so they never carry the reply itself — only that
there is one (and ids the app uses to open the conversation).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from channels.base import AppDevices, Channel, ChannelContext
from channels.webchat import NAMESPACE, outbound_json, room_for
from hub.channel_settings import AppPushSettings
from hub.domain import Channel as ChannelName
from hub.domain import CustomerAddress, DeliveryResult, OutboundMessage, PushDevice
from hub.errors import Forbidden, NotFound, Unauthenticated
from hub.http import bearer_token, read_model
from hub.identity_tokens import IdentityClaim, InvalidIdentityToken, verify_identity_token

log = logging.getLogger(__name__)

PUSH_BODY = "打开App查看回复 / Open the app to read the reply"
CUSTOMER_PREFIX = "customer:"


@dataclass(frozen=True)
class PushNotification:
    title: str
    body: str
    data: dict[str, str]


class DeviceUnregistered(Exception):
    """The push service no longer knows the device's token (app removed, token rotated)."""


class PushRefused(Exception):
    """The push service refused the notification for good (bad request, wrong credentials)."""


class PushProvider(Protocol):
    """Sends one notification to one device; returns the service's id for it."""

    async def push(self, device: PushDevice, notification: PushNotification) -> str:
        """Raise `DeviceUnregistered`, `PushRefused`, or anything else for a retryable failure."""
        ...


class HttpPushProvider:
    """An FCM HTTP v1-style push service (Firebase, or the firm's own push gateway)."""

    def __init__(self, settings: AppPushSettings) -> None:
        self.settings = settings
        self.http: aiohttp.ClientSession | None = None

    async def push(self, device: PushDevice, notification: PushNotification) -> str:
        if self.http is None:
            raise RuntimeError("app push is not running")
        body = {
            "message": {
                "token": device.push_token,
                "notification": {"title": notification.title, "body": notification.body},
                "data": notification.data,
            }
        }
        headers = {"Authorization": f"Bearer {self.settings.token}"}
        async with self.http.post(self.settings.url, json=body, headers=headers) as response:
            answer = await response.json(content_type=None)
            if response.status == 200 and isinstance(answer, dict) and "name" in answer:
                return str(answer["name"])
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            status = error.get("status") if isinstance(error, dict) else None
            if response.status == 404 or status in {"NOT_FOUND", "UNREGISTERED"}:
                raise DeviceUnregistered(device.push_token[:12])
            detail = f"push service answered {response.status} {status or ''}".strip()
            if response.status in (429,) or response.status >= 500:
                raise RuntimeError(detail)
            raise PushRefused(detail)


class _DeviceRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push_token: str = Field(min_length=1, max_length=512)
    platform: Literal["android", "ios", "harmony"]


class _DeviceRemoval(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the app may send back what it registered

    push_token: str = Field(min_length=1, max_length=512)


class AppChannel(Channel):
    """Replies to app customers: over the socket when connected, else by push."""

    name = ChannelName.APP.value

    def __init__(self, context: ChannelContext, provider: PushProvider | None = None) -> None:
        super().__init__(context)
        settings = context.settings.app_push
        self.http_provider = HttpPushProvider(settings) if settings is not None else None
        self.provider: PushProvider | None = provider or self.http_provider
        self.title = settings.title if settings is not None else ""

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/api/app/devices", self._register_device)
        app.router.add_delete("/api/app/devices", self._remove_device)
        if self.http_provider is not None:
            app.cleanup_ctx.append(self._http_session)

    async def _http_session(self, _: web.Application) -> AsyncIterator[None]:
        assert self.http_provider is not None
        timeout = aiohttp.ClientTimeout(total=self.http_provider.settings.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.http_provider.http = session
            yield
            self.http_provider.http = None

    # -- device registration --------------------------------------------------------------------

    def _customer(self, request: web.Request) -> IdentityClaim:
        token = bearer_token(request)
        if token is None:
            raise Unauthenticated("Send the app's identity token as 'Authorization: Bearer …'.")
        try:
            return verify_identity_token(self.context.settings.identity_secret, token)
        except InvalidIdentityToken as error:
            raise Forbidden(f"The identity token is not valid: {error}.") from error

    async def _register_device(self, request: web.Request) -> web.Response:
        claim = self._customer(request)
        body = await read_model(request, _DeviceRegistration)
        devices = self._devices()
        await devices.register(PushDevice(claim.customer_id, body.platform, body.push_token))
        return web.json_response({"ok": True, "platform": body.platform}, status=201)

    async def _remove_device(self, request: web.Request) -> web.Response:
        """Forget a device at logout; only its own customer may."""
        claim = self._customer(request)
        body = await read_model(request, _DeviceRemoval)
        devices = self._devices()
        mine = {d.push_token for d in await devices.devices_of(claim.customer_id)}
        if body.push_token not in mine:
            raise NotFound("No such device is registered for this customer.")
        await devices.forget(body.push_token)
        return web.json_response({"ok": True})

    def _devices(self) -> AppDevices:
        if self.context.app_devices is None:
            raise NotFound("Device registration is not available on this hub.")
        return self.context.app_devices

    # -- delivery -------------------------------------------------------------------------------

    def is_connected(self, address: CustomerAddress) -> bool:
        """Whether the app is connected to this hub process (rooms are per process)."""
        participants = self.context.sio.manager.get_participants(NAMESPACE, room_for(address))
        return any(True for _ in participants)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        if self.is_connected(message.address):
            await self.context.sio.emit(
                "message",
                outbound_json(message),
                room=room_for(message.address),
                namespace=NAMESPACE,
            )
            return DeliveryResult(ok=True)
        return await self._push(message)

    async def _push(self, message: OutboundMessage) -> DeliveryResult:
        offline = "The customer's app is closed and "
        if self.provider is None or self.context.app_devices is None:
            return DeliveryResult(
                ok=False, error=offline + "app push is not configured.", retryable=False
            )
        customer_ref = message.address.address.removeprefix(CUSTOMER_PREFIX)
        devices = await self.context.app_devices.devices_of(customer_ref)
        if not devices:
            return DeliveryResult(
                ok=False,
                error=offline + "no device is registered for push; they see it on opening.",
                retryable=False,
            )
        notification = PushNotification(
            title=self.title,
            body=PUSH_BODY,
            data={
                "type": "servicehub.message",
                "conversation_id": str(message.conversation_id),
                "message_id": str(message.message_id),
            },
        )
        sent: list[str] = []
        refused: list[str] = []
        for device in devices:
            try:
                sent.append(await self.provider.push(device, notification))
            except DeviceUnregistered:
                await self.context.app_devices.forget(device.push_token)
                refused.append(f"{device.platform} device no longer registered")
            except PushRefused as error:
                refused.append(str(error))
        if sent:
            return DeliveryResult(ok=True, provider_message_id=sent[0])
        return DeliveryResult(ok=False, error=offline + "; ".join(refused), retryable=False)

    async def typing(
        self, address: CustomerAddress, conversation_id: int, author: str, typing: bool
    ) -> None:
        await self.context.sio.emit(
            "typing",
            {"conversation_id": conversation_id, "author": author, "typing": typing},
            room=room_for(address),
            namespace=NAMESPACE,
        )
