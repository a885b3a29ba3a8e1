"""Twilio SMS and WhatsApp: Messaging webhooks in, Twilio's REST API out (through the outbox).

* `POST /channels/twilio/messages` — Twilio's incoming-message webhook (SMS and WhatsApp
  senders both point here). Signed form → `InboundMessage` keyed by `MessageSid`, so a
  webhook Twilio delivers twice is one message. The answer is an empty TwiML `<Response/>`:
  replies go out later via the REST API, from the outbox, with retries.
* `POST /channels/twilio/status` — message status callbacks (`MessageStatus`): delivered,
  read, failed, undelivered update the message's delivery status in the console.

Addresses are E.164 numbers on both channels (`whatsapp:+8613800001001` is stored as
`+8613800001001` on channel `whatsapp`), so one phone is one customer on SMS, WhatsApp and
voice. Replies are sent with aiohttp rather than Twilio's SDK, whose HTTP client blocks
(`channels/twilio_sms.py`, shared with the one-time codes).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import MultiDictProxy

from channels.base import Channel, ChannelContext
from channels.twilio_sms import fit_body, post_message, sender_field
from channels.twilio_webhooks import twilio_settings, twiml, verified_form
from hub.domain import (
    Channel as ChannelName,
)
from hub.domain import (
    CustomerAddress,
    DeliveryResult,
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
)
from hub.errors import InvalidInput
from hub.twilio_settings import TwilioSettings

log = logging.getLogger(__name__)

MESSAGES_PATH = "/channels/twilio/messages"
STATUS_PATH = "/channels/twilio/status"
WHATSAPP_PREFIX = "whatsapp:"
MAX_MEDIA = 10  # Twilio sends at most 10 media items per message
# MessageStatus values that change what the console shows; the rest (queued, sending,
# accepted, scheduled, receiving, received) are steps we do not track.
STATUS_MAP = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,  # WhatsApp read receipt: delivered, at least
    "failed": DeliveryStatus.FAILED,
    "undelivered": DeliveryStatus.FAILED,
}


class TwilioMessagingChannel(Channel):
    """SMS and WhatsApp over one Twilio account."""

    name = ChannelName.SMS.value
    aliases = (ChannelName.WHATSAPP.value,)

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self._http: aiohttp.ClientSession | None = None

    def setup(self, app: web.Application) -> None:
        if self.context.settings.twilio is None:
            return  # off: the webhooks answer 404, like any channel without credentials
        app.router.add_post(MESSAGES_PATH, self.on_message)
        app.router.add_post(STATUS_PATH, self.on_status)
        app.cleanup_ctx.append(self._http_session)

    async def _http_session(self, _: web.Application) -> AsyncIterator[None]:
        yield
        if self._http is not None:
            await self._http.close()

    # -- inbound ----------------------------------------------------------------------------

    async def on_message(self, request: web.Request) -> web.StreamResponse:
        """Commit an incoming SMS or WhatsApp message (once per MessageSid)."""
        form = await verified_form(request, self.context.settings)
        if "MessageStatus" in form and "Body" not in form:
            return await self._apply_status(form)  # a status callback sent to this URL
        inbound = self._parse(form)
        if inbound is None:
            return twiml()
        await self.accept_webhook_message(inbound)
        return twiml()

    def _parse(self, form: MultiDictProxy[str]) -> InboundMessage | None:
        """The message in Twilio's form, or None for one we deliberately ignore."""
        sid = form.get("MessageSid") or form.get("SmsMessageSid")
        sender = form.get("From", "").strip()
        if not sid or not sender:
            raise InvalidInput("MessageSid and From are required: this is not a Twilio message.")
        twilio = twilio_settings(self.context.settings)
        if sender in {twilio.sms_from, twilio.whatsapp_from}:
            log.info("twilio: ignored message %s from our own sender (echo)", sid)
            return None
        channel = ChannelName.WHATSAPP if sender.startswith(WHATSAPP_PREFIX) else ChannelName.SMS
        media = _media_urls(form)
        text = form.get("Body", "").strip()
        if not text and not media:
            log.info("twilio: ignored empty message %s", sid)
            return None
        return InboundMessage(
            address=CustomerAddress(channel.value, sender),
            text=text,
            channel_message_id=sid,
            display_name=form.get("ProfileName") or None,  # WhatsApp profile name
            media_urls=media,
        )

    async def on_status(self, request: web.Request) -> web.StreamResponse:
        """Apply a message status callback to the message Twilio sent for us."""
        form = await verified_form(request, self.context.settings)
        return await self._apply_status(form)

    async def _apply_status(self, form: MultiDictProxy[str]) -> web.StreamResponse:
        sid, status = form.get("MessageSid"), form.get("MessageStatus")
        if not sid or not status:
            raise InvalidInput("MessageSid and MessageStatus are required in a status callback.")
        mapped = STATUS_MAP.get(status)
        if mapped is None or self.context.record_status is None:
            return twiml()  # a step we do not track: 200 so Twilio does not retry
        error = None
        if mapped == DeliveryStatus.FAILED:
            code = form.get("ErrorCode")
            error = f"Twilio reports the message {status}" + (f" (error {code})" if code else "")
        to = form.get("To", "")
        channel = ChannelName.WHATSAPP if to.startswith(WHATSAPP_PREFIX) else ChannelName.SMS
        await self.context.record_status(channel.value, sid, mapped, error)
        return twiml()

    # -- outbound ---------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """POST the reply to Twilio's Messages API; a 5xx or a network error is retryable."""
        twilio = self.context.settings.twilio
        if twilio is None:
            return DeliveryResult(ok=False, error="Twilio is not configured", retryable=False)
        form = self._request_form(twilio, message)
        if isinstance(form, DeliveryResult):
            return form
        return await post_message(self._session(twilio), twilio, form)

    def _request_form(
        self, twilio: TwilioSettings, message: OutboundMessage
    ) -> dict[str, str] | DeliveryResult:
        address = message.address.address
        if message.address.channel == ChannelName.WHATSAPP:
            sender = twilio.whatsapp_from
            to = address if address.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + address
        else:
            sender, to = twilio.sms_from, address
        if not sender:
            return DeliveryResult(
                ok=False,
                error=f"no Twilio sender for {message.address.channel}: set "
                f"SERVICEHUB_TWILIO_{message.address.channel.upper()}_FROM",
                retryable=False,
            )
        form = {"To": to, "Body": fit_body(self.text_with_sources(message))}
        # A Messaging Service SID lets Twilio pick the number (and handles opt-outs).
        form[sender_field(sender)] = sender
        if self.context.settings.public_url:
            form["StatusCallback"] = self.context.settings.public_url.rstrip("/") + STATUS_PATH
        return form

    def _session(self, twilio: TwilioSettings) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=twilio.timeout_seconds)
            )
        return self._http


def _media_urls(form: MultiDictProxy[str]) -> tuple[str, ...]:
    try:
        count = min(int(form.get("NumMedia", "0")), MAX_MEDIA)
    except ValueError as error:
        raise InvalidInput("NumMedia must be a whole number.") from error
    return tuple(url for i in range(count) if (url := form.get(f"MediaUrl{i}")))
