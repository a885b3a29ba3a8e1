"""Meta's channels: WhatsApp over the Cloud API, and Facebook Messenger.

Both are webhooks of one Meta app (`/channels/whatsapp_cloud/webhook` and
`/channels/messenger/webhook`):

* GET is Meta's verification handshake: `hub.mode=subscribe` with our verify token → echo
  `hub.challenge`; anything else → 403.
* Every POST carries `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with the app
  secret>`; a missing or wrong one → 403 and nothing is read. A body that is not Meta's
  shape → 400; events we do not handle (reactions, reads, other numbers) → 200, so Meta does
  not retry them. Batches (`entry[]` → `changes[]`/`messaging[]`) are taken apart here.
* The provider's message ids (`wamid.…`, `m_…`) are the idempotency keys: Meta redelivers.
* Replies go out through the Graph API. Meta only allows free text within 24 hours of the
  customer's last message (the customer-service window). Outside it, WhatsApp accepts only
  approved templates: a reply then goes out as the configured template with the text as
  its parameter, or — with no template configured — is not sent and fails saying why.
  Messenger allows a human agent's reply for 7 days with the `HUMAN_AGENT` tag.

A WhatsApp number is a phone number: the address is E.164 (`+8613800001001`), so the same
customer is recognised on SMS, voice and WhatsApp over Twilio. A Messenger PSID is a page-
scoped handle: that customer stays separate until verified.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from channels.base import Channel, ChannelContext
from hub.channel_settings import MetaSettings
from hub.clock import utcnow
from hub.domain import (
    Author,
    CustomerAddress,
    DeliveryResult,
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
)
from hub.domain import Channel as ChannelName
from hub.errors import Forbidden, InvalidInput
from hub.http import describe_validation_error

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)  # Messenger's HUMAN_AGENT tag
WHATSAPP_TEXT_LIMIT = 4096
MESSENGER_TEXT_LIMIT = 2000
TEMPLATE_PARAMETER_LIMIT = 1024
# Meta refuses template parameters with new lines, tabs or more than 4 spaces in a row.
_TEMPLATE_SPACING = re.compile(r"\s*[\r\n\t]+\s*| {5,}")
_STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,  # read implies delivered; the hub has no "read" state
    "failed": DeliveryStatus.FAILED,
}
_MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")


def signature_for(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends with `body`."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def is_signed_by_meta(app_secret: str, body: bytes, header: str | None) -> bool:
    """Check the signature of a webhook body in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(header.strip().encode(), signature_for(app_secret, body).encode())


@dataclass(frozen=True)
class StatusReceipt:
    """A provider's word on one message we sent."""

    provider_message_id: str
    status: DeliveryStatus
    error: str | None = None


class GraphError(Exception):
    """The Graph API refused a request; `retryable` when a later attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


# -- the webhook payloads (only the fields we use; Meta adds fields freely) ------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _WaText(_Model):
    body: str


class _WaMedia(_Model):
    id: str
    caption: str | None = None


class _WaReply(_Model):
    id: str
    title: str


class _WaInteractive(_Model):
    type: str
    button_reply: _WaReply | None = None
    list_reply: _WaReply | None = None


class _WaButton(_Model):
    text: str
    payload: str | None = None


class _WaMessage(_Model):
    sender: str = Field(alias="from")
    id: str
    timestamp: str
    type: str
    text: _WaText | None = None
    interactive: _WaInteractive | None = None
    button: _WaButton | None = None
    image: _WaMedia | None = None
    document: _WaMedia | None = None
    audio: _WaMedia | None = None
    video: _WaMedia | None = None
    sticker: _WaMedia | None = None


class _WaProfile(_Model):
    name: str | None = None


class _WaContact(_Model):
    wa_id: str
    profile: _WaProfile | None = None


class _WaStatusError(_Model):
    code: int
    title: str | None = None
    message: str | None = None


class _WaStatus(_Model):
    id: str
    status: str
    recipient_id: str | None = None
    errors: list[_WaStatusError] = []


class _WaMetadata(_Model):
    phone_number_id: str
    display_phone_number: str | None = None


class _WaValue(_Model):
    messaging_product: str | None = None
    metadata: _WaMetadata
    contacts: list[_WaContact] = []
    messages: list[_WaMessage] = []
    statuses: list[_WaStatus] = []


class _WaChange(_Model):
    field: str
    value: dict[str, Any]


class _WaEntry(_Model):
    id: str
    changes: list[_WaChange]


class _WaWebhook(_Model):
    object: Literal["whatsapp_business_account"]
    entry: list[_WaEntry]


class _MsParty(_Model):
    id: str


class _MsAttachmentPayload(_Model):
    url: str | None = None


class _MsAttachment(_Model):
    type: str
    payload: _MsAttachmentPayload | None = None


class _MsMessage(_Model):
    mid: str
    text: str | None = None
    is_echo: bool = False
    attachments: list[_MsAttachment] = []


class _MsPostback(_Model):
    mid: str | None = None
    title: str | None = None
    payload: str | None = None


class _MsDelivery(_Model):
    mids: list[str] = []


class _MsEvent(_Model):
    sender: _MsParty
    recipient: _MsParty
    timestamp: int | None = None
    message: _MsMessage | None = None
    postback: _MsPostback | None = None
    delivery: _MsDelivery | None = None


class _MsEntry(_Model):
    id: str
    messaging: list[_MsEvent] = []


class _MsWebhook(_Model):
    object: Literal["page"]
    entry: list[_MsEntry]


def _parse(model: type[_Model], payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise InvalidInput("The request body must be a JSON object from Meta.")
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise InvalidInput(
            "This is not a Meta webhook payload. " + describe_validation_error(error)
        ) from error


# -- the adapters ---------------------------------------------------------------------------


class MetaChannel(Channel):
    """What WhatsApp Cloud and Messenger share: handshake, signature, Graph API, the window."""

    label: str  # as docs and errors name the channel

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self.meta: MetaSettings | None = context.settings.meta
        self.http: aiohttp.ClientSession | None = None

    @property
    @abstractmethod
    def enabled(self) -> bool:
        """Whether this channel's credentials are configured."""

    def setup(self, app: web.Application) -> None:
        if not self.enabled:
            return
        path = f"/channels/{self.name}/webhook"
        app.router.add_get(path, self._verify_subscription)
        app.router.add_post(path, self._receive)
        app.cleanup_ctx.append(self._http_session)

    async def _http_session(self, _: web.Application) -> AsyncIterator[None]:
        assert self.meta is not None
        timeout = aiohttp.ClientTimeout(total=self.meta.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.http = session
            yield
            self.http = None

    # -- inbound -------------------------------------------------------------------------------

    async def _verify_subscription(self, request: web.Request) -> web.Response:
        """Meta's GET handshake when the webhook is (re)configured in the app dashboard."""
        assert self.meta is not None
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token", "")
        challenge = request.query.get("hub.challenge", "")
        if mode != "subscribe" or not hmac.compare_digest(
            token.encode(), self.meta.verify_token.encode()
        ):
            raise Forbidden("The verify token does not match SERVICEHUB_META_VERIFY_TOKEN.")
        return web.Response(text=challenge, content_type="text/plain")

    async def _receive(self, request: web.Request) -> web.Response:
        assert self.meta is not None
        body = await request.read()
        if not is_signed_by_meta(self.meta.app_secret, body, request.headers.get(SIGNATURE_HEADER)):
            raise Forbidden(f"The {SIGNATURE_HEADER} signature is missing or does not match.")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidInput("The webhook body is not JSON.") from error
        messages, receipts = self.parse_webhook(payload)
        accepted = 0
        for message in messages:
            accepted += await self._accept(message)
        for receipt in receipts:
            if self.context.record_status is not None:
                await self.context.record_status(
                    self.name, receipt.provider_message_id, receipt.status, receipt.error
                )
        return web.json_response(
            {"ok": True, "accepted": accepted, "statuses": len(receipts)}, status=200
        )

    async def _accept(self, message: InboundMessage) -> int:
        # Meta retries the whole batch on a 5xx; what was committed stays deduplicated.
        return 0 if await self.accept_webhook_message(message) is None else 1

    @abstractmethod
    def parse_webhook(self, payload: Any) -> tuple[list[InboundMessage], list[StatusReceipt]]:
        """Take a (batched) webhook apart into customer messages and delivery receipts."""

    # -- outbound ------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        if not self.enabled:
            return DeliveryResult(
                ok=False, error=f"{self.label} is not configured on this hub.", retryable=False
            )
        try:
            return await self.send_text(message)
        except GraphError as error:
            if error.retryable:
                raise  # the provider may take it later: let the outbox try again
            return DeliveryResult(ok=False, error=str(error), retryable=False)

    @abstractmethod
    async def send_text(self, message: OutboundMessage) -> DeliveryResult:
        """Send the message inside or outside the customer-service window, as Meta allows."""

    async def _last_customer_message_at(self, address: CustomerAddress) -> datetime | None:
        history = await self.context.history(address)
        times = [m.created_at for m in history if m.author == Author.CUSTOMER]
        return max(times) if times else None

    async def _graph_post(self, path: str, token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to the Graph API; raise `GraphError` with Meta's own explanation on failure."""
        assert self.meta is not None
        if self.http is None:
            raise GraphError(f"{self.label} is not running", retryable=True)
        url = f"{self.meta.graph_url}/{self.meta.graph_version}/{path}"
        async with self.http.post(
            url, json=payload, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            text = await response.text()
            try:
                data = json.loads(text) if text else {}
            except json.JSONDecodeError:
                data = {}
            if response.status >= 400 or not isinstance(data, dict) or "error" in data:
                error = data.get("error") if isinstance(data, dict) else None
                detail = (
                    f"code {error.get('code')}: {error.get('message')}"
                    if isinstance(error, dict)
                    else text[:200]
                )
                retryable = response.status >= 500 or response.status == 429
                raise GraphError(
                    f"Graph API answered {response.status} ({detail})", retryable=retryable
                )
            return data


def _chunks(text: str, limit: int) -> Iterator[str]:
    """Split text longer than a channel allows, at a line or space break where possible."""
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        if cut < limit // 2:
            cut = limit
        yield text[:cut].rstrip()
        text = text[cut:].lstrip()
    if text:
        yield text


def _seconds(timestamp: str | int | None, *, millis: bool = False) -> datetime | None:
    try:
        value = int(timestamp) if timestamp is not None else None
    except ValueError:
        return None
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000 if millis else value, tz=UTC)


class WhatsAppCloudChannel(MetaChannel):
    """WhatsApp Business over Meta's Cloud API."""

    name = ChannelName.WHATSAPP_CLOUD.value
    label = "WhatsApp Cloud"

    @property
    def enabled(self) -> bool:
        return self.meta is not None and self.meta.whatsapp_enabled

    def parse_webhook(self, payload: Any) -> tuple[list[InboundMessage], list[StatusReceipt]]:
        webhook: _WaWebhook = _parse(_WaWebhook, payload)
        assert self.meta is not None
        messages: list[InboundMessage] = []
        receipts: list[StatusReceipt] = []
        for entry in webhook.entry:
            for change in entry.changes:
                if change.field != "messages":
                    continue  # template status, quality updates, ...: nothing to do
                value: _WaValue = _parse(_WaValue, change.value)
                if value.metadata.phone_number_id != self.meta.whatsapp_phone_number_id:
                    # Another number of the same business account; not ours to answer.
                    continue
                names = {c.wa_id: c.profile.name for c in value.contacts if c.profile}
                messages += [m for m in (self._inbound(x, names) for x in value.messages) if m]
                receipts += [r for r in map(self._receipt, value.statuses) if r is not None]
        return messages, receipts

    def _inbound(self, message: _WaMessage, names: dict[str, str | None]) -> InboundMessage | None:
        text, media = _wa_content(message)
        if text is None:
            log.info("ignoring WhatsApp %s message %s", message.type, message.id)
            return None
        assert self.meta is not None
        media_urls = tuple(
            f"{self.meta.graph_url}/{self.meta.graph_version}/{media_id}" for media_id in media
        )
        return InboundMessage(
            address=CustomerAddress(self.name, "+" + message.sender.lstrip("+")),
            text=text,
            channel_message_id=message.id,
            display_name=names.get(message.sender),
            media_urls=media_urls,
            received_at=_seconds(message.timestamp),
        )

    @staticmethod
    def _receipt(status: _WaStatus) -> StatusReceipt | None:
        known = _STATUSES.get(status.status)
        if known is None:
            return None  # "deleted", "warning": nothing to show
        error = None
        if status.errors:
            first = status.errors[0]
            error = f"WhatsApp error {first.code}: {first.message or first.title or 'failed'}"
        return StatusReceipt(status.id, known, error)

    async def send_text(self, message: OutboundMessage) -> DeliveryResult:
        to = message.address.address.lstrip("+")
        text = self.text_with_sources(message)
        last = await self._last_customer_message_at(message.address)
        if last is None or utcnow() - last > CUSTOMER_SERVICE_WINDOW:
            return await self._send_template(to, text, last)
        ids: list[str] = []
        for part in _chunks(text, WHATSAPP_TEXT_LIMIT):
            payload = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"preview_url": False, "body": part},
            }
            ids.append(await self._post_message(payload))
        return DeliveryResult(ok=True, provider_message_id=ids[-1])

    async def _send_template(self, to: str, text: str, last: datetime | None) -> DeliveryResult:
        assert self.meta is not None
        template = self.meta.whatsapp_window_template
        since = f"last message {last.isoformat(timespec='minutes')}" if last else "no message"
        if template is None:
            return DeliveryResult(
                ok=False,
                retryable=False,  # the window will not reopen by itself
                error=(
                    "Not sent: outside WhatsApp's 24-hour customer-service window "
                    f"({since} from the customer), where only approved templates may be sent; "
                    "set SERVICEHUB_META_WHATSAPP_WINDOW_TEMPLATE or wait for the customer "
                    "to write again."
                ),
            )
        parameter = _TEMPLATE_SPACING.sub(" ", text).strip()
        if len(parameter) > TEMPLATE_PARAMETER_LIMIT:
            return DeliveryResult(
                ok=False,
                retryable=False,  # the same text would be refused again
                error=(
                    "Not sent: outside WhatsApp's 24-hour window the reply goes out as template "
                    f"{template.name!r}, whose parameter takes at most "
                    f"{TEMPLATE_PARAMETER_LIMIT} characters; this reply has {len(parameter)}."
                ),
            )
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {
                "name": template.name,
                "language": {"code": template.language},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": parameter}]}
                ],
            },
        }
        return DeliveryResult(ok=True, provider_message_id=await self._post_message(payload))

    async def _post_message(self, payload: dict[str, Any]) -> str:
        assert self.meta is not None and self.meta.whatsapp_token is not None
        path = f"{self.meta.whatsapp_phone_number_id}/messages"
        data = await self._graph_post(path, self.meta.whatsapp_token, payload)
        sent = data.get("messages")
        if not isinstance(sent, list) or not sent or not isinstance(sent[0], dict):
            raise GraphError("Graph API answered without a message id", retryable=False)
        return str(sent[0]["id"])


def _wa_content(message: _WaMessage) -> tuple[str | None, tuple[str, ...]]:
    """The text of a WhatsApp message (richer content as text) and its media ids."""
    if message.type == "text" and message.text is not None:
        return message.text.body, ()
    if message.type == "interactive" and message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        return (reply.title, ()) if reply else (None, ())
    if message.type == "button" and message.button is not None:
        return message.button.text, ()
    if message.type in _MEDIA_TYPES:
        media: _WaMedia | None = getattr(message, message.type)
        if media is not None:
            return media.caption or f"[{message.type}]", (media.id,)
    return None, ()  # reactions, locations, "unsupported", system messages


class MessengerChannel(MetaChannel):
    """Facebook Messenger for a Page, over the Send API."""

    name = ChannelName.MESSENGER.value
    label = "Messenger"

    @property
    def enabled(self) -> bool:
        return self.meta is not None and self.meta.messenger_enabled

    def parse_webhook(self, payload: Any) -> tuple[list[InboundMessage], list[StatusReceipt]]:
        webhook: _MsWebhook = _parse(_MsWebhook, payload)
        messages: list[InboundMessage] = []
        receipts: list[StatusReceipt] = []
        for entry in webhook.entry:
            for event in entry.messaging:
                if event.delivery is not None:
                    receipts += [
                        StatusReceipt(mid, DeliveryStatus.DELIVERED) for mid in event.delivery.mids
                    ]
                inbound = self._inbound(event)
                if inbound is not None:
                    messages.append(inbound)
        return messages, receipts

    def _inbound(self, event: _MsEvent) -> InboundMessage | None:
        received_at = _seconds(event.timestamp, millis=True)
        address = CustomerAddress(self.name, event.sender.id)
        if event.message is not None:
            if event.message.is_echo:
                return None  # the page's own message coming back: answering it would loop
            urls = tuple(
                a.payload.url for a in event.message.attachments if a.payload and a.payload.url
            )
            kinds = [a.type for a in event.message.attachments]
            text = event.message.text or " ".join(f"[{kind}]" for kind in kinds)
            if not text:
                return None
            return InboundMessage(
                address=address,
                text=text,
                channel_message_id=event.message.mid,
                media_urls=urls,
                received_at=received_at,
            )
        if event.postback is not None and event.postback.mid and event.postback.title:
            return InboundMessage(
                address=address,
                text=event.postback.title,
                channel_message_id=event.postback.mid,
                received_at=received_at,
            )
        return None  # reads, reactions, opt-ins, handover events

    async def send_text(self, message: OutboundMessage) -> DeliveryResult:
        assert self.meta is not None and self.meta.messenger_page_token is not None
        last = await self._last_customer_message_at(message.address)
        age = utcnow() - last if last is not None else None
        tag: dict[str, str] = {"messaging_type": "RESPONSE"}
        if age is None or age > CUSTOMER_SERVICE_WINDOW:
            if message.author != Author.AGENT or age is None or age > HUMAN_AGENT_WINDOW:
                return DeliveryResult(
                    ok=False,
                    retryable=False,
                    error=(
                        "Not sent: outside Messenger's 24-hour standard messaging window; only a "
                        "person's reply within 7 days may be sent (HUMAN_AGENT tag)."
                    ),
                )
            tag = {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        ids: list[str] = []
        for part in _chunks(self.text_with_sources(message), MESSENGER_TEXT_LIMIT):
            payload = {
                "recipient": {"id": message.address.address},
                **tag,
                "message": {"text": part},
            }
            data = await self._graph_post("me/messages", self.meta.messenger_page_token, payload)
            if "message_id" not in data:
                raise GraphError("Graph API answered without a message id", retryable=False)
            ids.append(str(data["message_id"]))
        return DeliveryResult(ok=True, provider_message_id=ids[-1])
