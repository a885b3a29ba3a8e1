"""What every Twilio webhook shares: form parsing, `X-Twilio-Signature`, the public URL, TwiML.

Twilio signs each webhook with the account's auth token over the exact URL it called plus
the sorted form parameters (HMAC-SHA1). Behind a reverse proxy the hub sees another scheme,
host and port than Twilio used, so the URL checked is `SERVICEHUB_PUBLIC_URL` + the path and
query the request arrived with. The check uses the `twilio` package's own `RequestValidator`
(pure computation on a small form, so calling it on the event loop blocks nothing).
"""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import RequestValidator

from hub.errors import Forbidden, InvalidInput, ServiceUnavailable
from hub.settings import Settings
from hub.twilio_settings import TwilioSettings

SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def twilio_settings(settings: Settings) -> TwilioSettings:
    """The Twilio settings, or 503 when Twilio is not configured on this hub."""
    if settings.twilio is None:
        raise ServiceUnavailable(
            "Twilio is not configured on this hub: set SERVICEHUB_TWILIO_ACCOUNT_SID, "
            "SERVICEHUB_TWILIO_AUTH_TOKEN and a sender (docs/channels.md)."
        )
    return settings.twilio


def public_url(request: web.Request, settings: Settings) -> str:
    """The URL Twilio called: the configured public base (the proxy) + path and query."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.path_qs
    return str(request.url)


async def verified_form(request: web.Request, settings: Settings) -> MultiDictProxy[str]:
    """Read a Twilio webhook's form; 400 when it is no Twilio request, 403 when unsigned."""
    twilio = twilio_settings(settings)
    if request.content_type != FORM_TYPE:
        raise InvalidInput(f"Twilio webhooks are {FORM_TYPE}; this is not a Twilio request.")
    raw = await request.post()
    form = MultiDictProxy(MultiDict((k, v) for k, v in raw.items() if isinstance(v, str)))
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise Forbidden(f"The {SIGNATURE_HEADER} header is missing; only Twilio may call this.")
    url = public_url(request, settings)
    if not RequestValidator(twilio.auth_token).validate(url, form, signature):
        raise Forbidden(
            f"The {SIGNATURE_HEADER} does not match this request. If Twilio calls the hub "
            "through a proxy, set SERVICEHUB_PUBLIC_URL to the address Twilio calls."
        )
    if form.get("AccountSid") != twilio.account_sid:
        raise InvalidInput("AccountSid is missing or is not this hub's Twilio account.")
    return form


def twiml(body: str = EMPTY_TWIML) -> web.Response:
    """A TwiML answer (an empty `<Response/>` tells Twilio there is nothing to do now)."""
    return web.Response(text=body, content_type="text/xml", charset="utf-8")
