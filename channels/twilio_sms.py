"""One message through Twilio's Messages API: the call both the SMS channel and OTP codes make.

aiohttp rather than Twilio's SDK, whose HTTP client blocks the event loop. Twilio's answer
becomes a `DeliveryResult`: 201 with a message SID is sent; 5xx, 408, 429 and an
unreachable API are worth retrying; any other 4xx is final (our request was wrong).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp

from hub.domain import DeliveryResult
from hub.errors import ServiceUnavailable
from hub.twilio_settings import TwilioSettings

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 1600  # Twilio refuses longer message bodies (error 21617)


def fit_body(text: str) -> str:
    """The text cut to what Twilio accepts in one message."""
    return text if len(text) <= MAX_BODY_CHARS else text[: MAX_BODY_CHARS - 1] + "…"


def sender_field(sender: str) -> str:
    """The form field for a sender: a Messaging Service SID lets Twilio pick the number."""
    return "MessagingServiceSid" if sender.startswith("MG") else "From"


async def post_message(
    http: aiohttp.ClientSession, twilio: TwilioSettings, form: Mapping[str, str]
) -> DeliveryResult:
    """POST one message form (`To`, `From`/`MessagingServiceSid`, `Body`, …) to Twilio."""
    url = f"{twilio.api_url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    auth = {"Authorization": aiohttp.encode_basic_auth(twilio.account_sid, twilio.auth_token)}
    try:
        async with http.post(url, data=dict(form), headers=auth) as response:
            status = response.status
            body = await _json_or_none(response)
    except (aiohttp.ClientError, TimeoutError) as error:
        return DeliveryResult(ok=False, error=f"Twilio unreachable: {type(error).__name__}")
    sid = body.get("sid") if body is not None else None
    if status in (200, 201) and isinstance(sid, str):
        return DeliveryResult(ok=True, provider_message_id=sid)
    detail = f"{body.get('code')} {body.get('message')}" if body else "no JSON body"
    # 429 and 5xx are Twilio's trouble (or load); any other 4xx is ours and final.
    retryable = status >= 500 or status in (408, 429)
    return DeliveryResult(
        ok=False, error=f"Twilio answered {status}: {detail}", retryable=retryable
    )


async def _json_or_none(response: aiohttp.ClientResponse) -> dict[str, object] | None:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return None
    return body if isinstance(body, dict) else None


class TwilioSmsSender:
    """`routing.otp.SmsSender` over Twilio SMS: one-time codes from the firm's SMS sender.

    Sent at once rather than through the outbox: a code is useful for five minutes and the
    customer is waiting for it, so a failure is reported to them (ask again) instead of
    being retried behind their back.
    """

    def __init__(self, twilio: TwilioSettings) -> None:
        if not twilio.sms_from:
            raise ValueError("one-time codes need SERVICEHUB_TWILIO_SMS_FROM")
        self.twilio = twilio
        self.sms_from = twilio.sms_from
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.twilio.timeout_seconds)
        self._http = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send_sms(self, to: str, text: str) -> None:
        """Text `to`; raise `ServiceUnavailable` when Twilio does not take the message."""
        if self._http is None:
            raise ServiceUnavailable("The SMS service is not running; please try again shortly.")
        form = {"To": to, "Body": fit_body(text), sender_field(self.sms_from): self.sms_from}
        result = await post_message(self._http, self.twilio, form)
        if not result.ok:
            # The log names the number's last digits only: the code itself never goes there.
            log.warning("twilio: one-time code to …%s not sent: %s", to[-4:], result.error)
            raise ServiceUnavailable(
                "We could not send the code by SMS just now; please try again in a minute."
            )
