"""Phone numbers as the hub stores them: E.164, so one number is one address on every channel.

SMS, WhatsApp and voice all identify a customer by phone number, but providers spell it
differently (`+86 138 0000 1001`, `8613800001001`, `whatsapp:+8613800001001`, a national
`13800001001`). Normalising to E.164 with Google's libphonenumber makes them one key.
"""

from __future__ import annotations

import phonenumbers

from hub.errors import InvalidInput

# Channels whose address is a phone number.
# WhatsApp over Twilio is "whatsapp"; WhatsApp over Meta's Cloud API is "whatsapp_cloud".
PHONE_CHANNELS = frozenset({"sms", "whatsapp", "whatsapp_cloud", "voice"})
DEFAULT_REGION = "CN"
_PROVIDER_PREFIXES = ("whatsapp:", "tel:", "sms:")


def is_phone_channel(channel: str) -> bool:
    """Say whether addresses on `channel` are phone numbers."""
    return channel in PHONE_CHANNELS


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """Return `raw` as E.164 (`+8613800001001`); raise `InvalidInput` when it is no number.

    Numbers without a `+` are read in `region` first; a bare international number written
    without its `+` (`8613800001001`, as some providers send it) is tried as one next.
    """
    text = raw.strip()
    for prefix in _PROVIDER_PREFIXES:
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    candidates = [text] if text.startswith("+") else [text, "+" + text.lstrip("0")]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region.upper())
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidInput(f"{_shown(raw)} is not a valid phone number.")


def normalise_address(channel: str, address: str, region: str = DEFAULT_REGION) -> str:
    """Normalise a channel address: E.164 on phone channels, unchanged elsewhere.

    A phone-channel address that is not a valid number is kept as sent (trimmed) rather than
    refused, so an odd caller id still reaches a person; it simply matches no one else.
    """
    if not is_phone_channel(channel):
        return address
    try:
        return normalise_phone(address, region)
    except InvalidInput:
        return address.strip()


def _shown(raw: str) -> str:
    # Never echo a whole number back into an error message or a log line.
    digits = "".join(c for c in raw if c.isdigit())
    return f"…{digits[-4:]}" if len(digits) > 4 else "That"
