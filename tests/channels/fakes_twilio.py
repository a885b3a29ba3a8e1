"""Local stand-ins for Twilio's Messages and Calls APIs, and its webhooks signed as it does.

The fake checks what Twilio checks before accepting a message — HTTP basic auth with the
account SID and auth token, the account in the path, `To`, a sender (`From` or
`MessagingServiceSid`), a `Body`, WhatsApp senders only to WhatsApp addresses — answers in
Twilio's shapes (including its error bodies with Twilio error codes), records what was
sent, and can be told to fail with a 5xx. It can also play Twilio's status callbacks: sign
them for the `StatusCallback` URL the hub gave (the public URL, behind the proxy) and post
them to the hub on loopback, as the proxy would.

For voice, the fake takes the Calls API's "update a call" request (redirecting a live call
to new TwiML) with the same checks — basic auth, a `CA…` CallSid, an absolute `Url` — and
refuses a call that has ended (error 21220) as Twilio does. It plays the webhooks of a call:
incoming, gather results, status callbacks.

Webhooks are signed with the `twilio` package's own `RequestValidator.compute_signature`:
HMAC-SHA1 over the URL Twilio called plus the sorted form parameters.
"""

from __future__ import annotations

import base64
import itertools
import re
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.channels.fake_server import FakeProvider, serve_on_loopback

ACCOUNT_SID = "AC" + "5ef8732a3c49700934481addd5ce1659"[:32]
AUTH_TOKEN = "twilio-test-auth-token-0123456789"
SMS_NUMBER = "+14155550100"  # the bank's Twilio number
WHATSAPP_SENDER = "whatsapp:+14155238886"
# The address Twilio calls: a TLS-terminating reverse proxy in front of the hub.
PUBLIC_URL = "https://hub.bank.example"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CALL_SID = re.compile(r"^CA[0-9a-f]{32}$")
VOICE_NUMBER = "+14155550199"  # the bank's Twilio number for calls


@dataclass
class SentMessage:
    """One message the fake accepted."""

    sid: str
    to: str
    sender: str  # From, or the Messaging Service SID
    body: str
    status_callback: str | None


@dataclass
class CallRedirect:
    """One live call the fake was asked to point at new TwiML."""

    call_sid: str
    url: str
    method: str


@dataclass
class FakeTwilio(FakeProvider[SentMessage]):
    """The fake's state: what it accepted, and the failures it was told to produce."""

    attempts: int = 0  # every POST to Messages.json, accepted or not
    fail_status: int | None = None  # answer every send with this HTTP status while set
    redirects: list[CallRedirect] = field(default_factory=list)
    ended_calls: set[str] = field(default_factory=set)  # calls Twilio would refuse to update
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def wait_attempts(self, count: int, timeout: float = 60.0) -> None:
        """Wait until the API was called `count` times (accepted or refused)."""
        await self.wait_until(lambda: self.attempts >= count, timeout)

    async def next_redirect(
        self, where: Callable[[CallRedirect], bool], timeout: float = 60.0
    ) -> CallRedirect:
        """Wait for the first call redirect that satisfies `where`."""
        return await self.first_in(self.redirects, where, timeout)

    def _accept(self, to: str, sender: str, body: str, callback: str | None) -> SentMessage:
        sid = f"SM{next(self._ids):032x}"
        message = SentMessage(sid, to, sender, body, callback)
        self.sent.append(message)
        return message


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


def _basic_auth(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    return user, password


def build_app(state: FakeTwilio) -> web.Application:
    async def create_message(request: web.Request) -> web.Response:
        state.attempts += 1
        state._arrived.set()
        if _basic_auth(request) != (ACCOUNT_SID, AUTH_TOKEN):
            return _error(401, 20003, "Authenticate")
        if request.match_info["account"] != ACCOUNT_SID:
            return _error(404, 20404, "The requested resource was not found")
        if state.fail_status is not None:
            return _error(state.fail_status, 20500, "Internal Server Error")
        if request.content_type != "application/x-www-form-urlencoded":
            return _error(400, 20001, "Unsupported content type")
        form = await request.post()
        problem = _problem(form)
        if problem is not None:
            return _error(400, *problem)
        to, body = str(form["To"]), str(form["Body"])
        sender = str(form.get("From") or form.get("MessagingServiceSid"))
        callback = form.get("StatusCallback")
        message = state._accept(to, sender, body, str(callback) if callback else None)
        state._arrived.set()
        return web.json_response(
            {
                "sid": message.sid,
                "account_sid": ACCOUNT_SID,
                "to": to,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": body,
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json",
            },
            status=201,
        )

    async def update_call(request: web.Request) -> web.Response:
        state.attempts += 1
        state._arrived.set()
        if _basic_auth(request) != (ACCOUNT_SID, AUTH_TOKEN):
            return _error(401, 20003, "Authenticate")
        call_sid = request.match_info["call"]
        if request.match_info["account"] != ACCOUNT_SID or not CALL_SID.match(call_sid):
            return _error(404, 20404, "The requested resource was not found")
        if state.fail_status is not None:
            return _error(state.fail_status, 20500, "Internal Server Error")
        if request.content_type != "application/x-www-form-urlencoded":
            return _error(400, 20001, "Unsupported content type")
        form = await request.post()
        url, method = str(form.get("Url", "")), str(form.get("Method", "POST"))
        if not url.startswith(("http://", "https://")) or method not in ("GET", "POST"):
            return _error(400, 21205, "Url is not a valid URL.")
        if call_sid in state.ended_calls:
            return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
        state.redirects.append(CallRedirect(call_sid, url, method))
        state._arrived.set()
        return web.json_response(
            {
                "sid": call_sid,
                "account_sid": ACCOUNT_SID,
                "status": "in-progress",
                "direction": "inbound",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json",
            }
        )

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", create_message)
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", update_call)
    return app


def _problem(form: Mapping[str, Any]) -> tuple[int, str] | None:
    """Twilio's own error code and message for a request it would refuse, if any."""
    to, sender = form.get("To"), form.get("From") or form.get("MessagingServiceSid")
    if not to:
        return 21604, "A 'To' phone number is required."
    if not sender:
        return 21603, "A 'From' phone number is required."
    if not form.get("Body") and not form.get("MediaUrl"):
        return 21602, "Message body is required."
    if len(str(form.get("Body", ""))) > 1600:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    to_whatsapp = str(to).startswith("whatsapp:")
    if to_whatsapp != str(sender).startswith("whatsapp:") and not str(sender).startswith("MG"):
        return 21910, "Invalid From and To pair. From and To should be of the same channel."
    if not E164.match(str(to).removeprefix("whatsapp:")):
        return 21211, f"The 'To' number {to} is not a valid phone number."
    return None


def fake_twilio() -> AbstractAsyncContextManager[FakeTwilio]:
    """Run the fake Twilio API on a loopback port."""
    return serve_on_loopback(FakeTwilio(), build_app)


# -- webhooks as Twilio sends them ---------------------------------------------------------------


def sign(url: str, params: Mapping[str, str], token: str = AUTH_TOKEN) -> str:
    """`X-Twilio-Signature` for a POST of `params` to `url`, as Twilio computes it."""
    return str(RequestValidator(token).compute_signature(url, dict(params)))


async def post_webhook(
    hub_url: str,
    path: str,
    params: Mapping[str, str],
    *,
    token: str | None = AUTH_TOKEN,
    signature: str | None = None,
    signed_url: str | None = None,
) -> tuple[int, str]:
    """POST a form to the hub as Twilio does (signed for the public URL); return (status, body)."""
    headers = {"User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": uuid.uuid4().hex}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    elif token is not None:
        headers["X-Twilio-Signature"] = sign(signed_url or PUBLIC_URL + path, params, token)
    async with (
        aiohttp.ClientSession() as http,
        http.post(hub_url + path, data=dict(params), headers=headers) as response,
    ):
        return response.status, await response.text()


def new_message_sid() -> str:
    return "SM" + uuid.uuid4().hex


def inbound_sms(sender: str, body: str, sid: str | None = None, **extra: str) -> dict[str, str]:
    """The form Twilio posts for an incoming SMS to the bank's number."""
    sid = sid or new_message_sid()
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "SAN FRANCISCO",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "CN",
        "To": SMS_NUMBER,
        "ToZip": "94105",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def inbound_whatsapp(
    phone: str, body: str, sid: str | None = None, *, name: str = "Wang", **extra: str
) -> dict[str, str]:
    """The form Twilio posts for an incoming WhatsApp message (`phone` is +E164)."""
    sid = sid or new_message_sid()
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": name,
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": phone.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": WHATSAPP_SENDER,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": f"whatsapp:{phone}",
        "ApiVersion": "2010-04-01",
        **extra,
    }


async def report_status(
    hub_url: str, message: SentMessage, status: str, *, error_code: str | None = None
) -> tuple[int, str]:
    """Play Twilio's status callback for a message the fake accepted."""
    assert message.status_callback is not None, "the hub gave no StatusCallback"
    params = {
        "SmsSid": message.sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": message.to,
        "MessageSid": message.sid,
        "AccountSid": ACCOUNT_SID,
        "From": message.sender,
        "ApiVersion": "2010-04-01",
    }
    if error_code is not None:
        params["ErrorCode"] = error_code
    path = urlsplit(message.status_callback).path
    return await post_webhook(hub_url, path, params, signed_url=message.status_callback)


# -- a phone call, as Twilio plays it ------------------------------------------------------------


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def call_form(caller: str, call_sid: str, **extra: str) -> dict[str, str]:
    """The parameters Twilio posts with every webhook of an incoming call."""
    return {
        "Called": VOICE_NUMBER,
        "ToState": "CA",
        "CallerCountry": "CN",
        "Direction": "inbound",
        "CallerState": "",
        "ToZip": "",
        "CallSid": call_sid,
        "To": VOICE_NUMBER,
        "CallerZip": "",
        "ToCountry": "US",
        "CallToken": "%7B%22parentCallInfoToken%22%3A%22eyJhbGciOiJFUzI1NiJ9%22%7D",
        "CalledZip": "",
        "ApiVersion": "2010-04-01",
        "CalledCity": "",
        "CallStatus": "in-progress",
        "From": caller,
        "AccountSid": ACCOUNT_SID,
        "CalledCountry": "US",
        "CallerCity": "",
        "Caller": caller,
        "FromCountry": "CN",
        "ToCity": "",
        "FromCity": "",
        "CalledState": "CA",
        "FromZip": "",
        "FromState": "",
        **extra,
    }


def speech_result(caller: str, call_sid: str, speech: str, language: str) -> dict[str, str]:
    """What a `<Gather input="speech dtmf">` posts when the caller spoke."""
    return call_form(caller, call_sid, SpeechResult=speech, Confidence="0.92", Language=language)


def digits_pressed(caller: str, call_sid: str, digits: str) -> dict[str, str]:
    """What a `<Gather>` posts when the caller pressed keys."""
    return call_form(caller, call_sid, Digits=digits, FinishedOnKey="")


def call_ended(caller: str, call_sid: str, status: str = "completed") -> dict[str, str]:
    """The call's status callback when it ends."""
    return call_form(
        caller,
        call_sid,
        CallStatus=status,
        CallDuration="42",
        Duration="1",
        Timestamp="Mon, 07 Dec 2026 02:00:00 +0000",
        CallbackSource="call-progress-events",
        SequenceNumber="0",
    )


def dial_ended(caller: str, call_sid: str, status: str) -> dict[str, str]:
    """What Twilio posts to a `<Dial action=…>` when the dialled leg ends (or never answers)."""
    return call_form(
        caller,
        call_sid,
        DialCallStatus=status,
        DialCallSid=new_call_sid(),
        DialCallDuration="0" if status != "completed" else "95",
        DialBridged="false" if status != "completed" else "true",
    )
