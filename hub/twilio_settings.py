"""Twilio's credentials and senders (SMS, WhatsApp, voice), read with the other settings.

Twilio is off until `SERVICEHUB_TWILIO_ACCOUNT_SID` is set; half a configuration fails at
start-up with a sentence naming what is missing (docs/channels.md says where to find it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hub.errors import ConfigurationError

Getter = Callable[[str], str | None]

DEFAULT_TWILIO_API_URL = "https://api.twilio.com"


@dataclass(frozen=True)
class TwilioSettings:
    """One Twilio account: its auth token signs webhooks and authenticates replies."""

    account_sid: str
    auth_token: str
    sms_from: str | None = None  # "+E164" number or a Messaging Service SID ("MG…")
    whatsapp_from: str | None = None  # "whatsapp:+E164", a WhatsApp-enabled Twilio sender
    api_url: str = DEFAULT_TWILIO_API_URL  # tests point this at a local fake
    timeout_seconds: float = 15.0

    @property
    def whatsapp_enabled(self) -> bool:
        return self.whatsapp_from is not None


def load_twilio_settings(get: Getter) -> TwilioSettings | None:
    """Read `SERVICEHUB_TWILIO_*`; None when Twilio is not configured."""
    sid, token = get("TWILIO_ACCOUNT_SID"), get("TWILIO_AUTH_TOKEN")
    sms_from, whatsapp_from = get("TWILIO_SMS_FROM"), get("TWILIO_WHATSAPP_FROM")
    if sid is None:
        if token or sms_from or whatsapp_from:
            raise ConfigurationError(
                "Twilio is partly configured: set SERVICEHUB_TWILIO_ACCOUNT_SID (AC…) too."
            )
        return None
    if not (sid.startswith("AC") and len(sid) == 34):
        raise ConfigurationError(
            "SERVICEHUB_TWILIO_ACCOUNT_SID must be the account SID from the Twilio console "
            "(34 characters starting with AC)."
        )
    if not token:
        raise ConfigurationError(
            "Set SERVICEHUB_TWILIO_AUTH_TOKEN (Twilio console → Account info): it signs "
            "Twilio's webhooks and authenticates the hub's replies."
        )
    if not sms_from and not whatsapp_from:
        raise ConfigurationError(
            "Set SERVICEHUB_TWILIO_SMS_FROM (+E164 number or MG… Messaging Service SID) and/or "
            "SERVICEHUB_TWILIO_WHATSAPP_FROM (whatsapp:+E164): the senders replies go out from."
        )
    if whatsapp_from and not whatsapp_from.startswith("whatsapp:+"):
        raise ConfigurationError(
            "SERVICEHUB_TWILIO_WHATSAPP_FROM must look like whatsapp:+14155238886, "
            f"not {whatsapp_from!r}."
        )
    if not get("PUBLIC_URL"):
        raise ConfigurationError(
            "Set SERVICEHUB_PUBLIC_URL with Twilio: it is the https:// address Twilio calls "
            "(your reverse proxy), and webhook signatures are checked against it."
        )
    api_url = get("TWILIO_API_URL") or DEFAULT_TWILIO_API_URL
    if not api_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"SERVICEHUB_TWILIO_API_URL must be an http(s):// URL, not {api_url!r}."
        )
    return TwilioSettings(
        account_sid=sid,
        auth_token=token,
        sms_from=sms_from,
        whatsapp_from=whatsapp_from,
        api_url=api_url.rstrip("/"),
    )
