"""Twilio's credentials and senders (SMS, WhatsApp, voice), read with the other settings.

Twilio is off until `SERVICEHUB_TWILIO_ACCOUNT_SID` is set; half a configuration fails at
start-up with a sentence naming what is missing (docs/channels.md says where to find it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.errors import ConfigurationError

Getter = Callable[[str], str | None]

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

DEFAULT_TWILIO_API_URL = "https://api.twilio.com"
# Who a voice call is put through to once an agent accepts it: a Twilio Voice SDK client
# in the console by default; `sip:agent-{agent_id}@pbx.bank.example` for the firm's PBX.
DEFAULT_VOICE_AGENT_TARGET = "client:agent-{agent_id}"
DEFAULT_VOICE_REPLY_SECONDS = 10.0
# Twilio gives up on a webhook after 15 s (error 11200); the hub must answer before that.
MAX_VOICE_REPLY_SECONDS = 14.0
AGENT_TARGET_SCHEMES = ("client:", "sip:", "+")


@dataclass(frozen=True)
class TwilioSettings:
    """One Twilio account: its auth token signs webhooks and authenticates replies."""

    account_sid: str
    auth_token: str
    sms_from: str | None = None  # "+E164" number or a Messaging Service SID ("MG…")
    whatsapp_from: str | None = None  # "whatsapp:+E164", a WhatsApp-enabled Twilio sender
    api_url: str = DEFAULT_TWILIO_API_URL  # tests point this at a local fake
    timeout_seconds: float = 15.0
    voice_number: str | None = None  # "+E164": the Twilio number customers call
    voice_agent_target: str = DEFAULT_VOICE_AGENT_TARGET  # `{agent_id}` is filled in
    # Agent calls are recorded (regulated advice must be, e.g. MiFID II); callers hear a notice.
    voice_record: bool = True
    voice_reply_seconds: float = DEFAULT_VOICE_REPLY_SECONDS  # wait for the bot per turn

    @property
    def whatsapp_enabled(self) -> bool:
        return self.whatsapp_from is not None

    @property
    def voice_enabled(self) -> bool:
        return self.voice_number is not None


def load_twilio_settings(get: Getter) -> TwilioSettings | None:
    """Read `SERVICEHUB_TWILIO_*`; None when Twilio is not configured."""
    sid, token = get("TWILIO_ACCOUNT_SID"), get("TWILIO_AUTH_TOKEN")
    sms_from, whatsapp_from = get("TWILIO_SMS_FROM"), get("TWILIO_WHATSAPP_FROM")
    voice_number = get("TWILIO_VOICE_NUMBER")
    if sid is None:
        if token or sms_from or whatsapp_from or voice_number:
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
    if not sms_from and not whatsapp_from and not voice_number:
        raise ConfigurationError(
            "Set SERVICEHUB_TWILIO_SMS_FROM (+E164 number or MG… Messaging Service SID), "
            "SERVICEHUB_TWILIO_WHATSAPP_FROM (whatsapp:+E164) and/or "
            "SERVICEHUB_TWILIO_VOICE_NUMBER (+E164): the numbers customers reach the hub on."
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
        **_voice_settings(get, voice_number),
    )


def _voice_settings(get: Getter, voice_number: str | None) -> dict[str, Any]:
    """The `SERVICEHUB_TWILIO_VOICE_*` settings, checked (only read when voice is on)."""
    if voice_number is None:
        return {}
    if not E164.match(voice_number):
        raise ConfigurationError(
            "SERVICEHUB_TWILIO_VOICE_NUMBER must be the Twilio number callers dial, in E.164 "
            f"(+14155550100), not {voice_number!r}."
        )
    target = get("TWILIO_VOICE_AGENT_TARGET") or DEFAULT_VOICE_AGENT_TARGET
    if "{agent_id}" not in target or not target.startswith(AGENT_TARGET_SCHEMES):
        raise ConfigurationError(
            "SERVICEHUB_TWILIO_VOICE_AGENT_TARGET must contain {agent_id} and start with "
            "client: (Twilio Voice SDK), sip: (the firm's PBX) or + (a phone number), e.g. "
            f"{DEFAULT_VOICE_AGENT_TARGET}; not {target!r}."
        )
    record = (get("TWILIO_VOICE_RECORD") or "true").strip().lower()
    if record not in BOOLEANS:
        raise ConfigurationError(
            f"SERVICEHUB_TWILIO_VOICE_RECORD must be true or false, not {record!r}."
        )
    return {
        "voice_number": voice_number,
        "voice_agent_target": target,
        "voice_record": BOOLEANS[record],
        "voice_reply_seconds": _reply_seconds(get("TWILIO_VOICE_REPLY_SECONDS")),
    }


def _reply_seconds(raw: str | None) -> float:
    if raw is None:
        return DEFAULT_VOICE_REPLY_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 1.0 <= seconds <= MAX_VOICE_REPLY_SECONDS:
        raise ConfigurationError(
            "SERVICEHUB_TWILIO_VOICE_REPLY_SECONDS must be a number of seconds from 1 to "
            f"{MAX_VOICE_REPLY_SECONDS:g} (Twilio abandons a webhook after 15 s), not {raw!r}."
        )
    return seconds
