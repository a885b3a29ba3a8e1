"""Masking of card numbers, national ID numbers, account numbers and phone numbers.

The one place that decides what a person sees of a customer's numbers (DESIGN.md, security
model): every field and every free text — chat messages, bot replies, notes, transaction
descriptions — goes through these functions before it is shown to a role that may not
reveal it. The formats follow docs/console-contract.md:

* card number (PAN, 13–19 digits, Luhn-valid): first 6 and last 4 kept, `622588******1234`
  (what PCI DSS allows to be displayed: the BIN and the last four);
* Chinese resident ID (18 characters): first 3 and last 4 kept, `110***********1234`;
* phone number: country code, first 3 and last 4 of the national number, `+86 138****5678`;
* any other run of 12 or more digits (account, policy, contract numbers): last 4 kept.

When in doubt we mask: over-masking costs an agent a click on "reveal", under-masking
leaks a number.
"""

from __future__ import annotations

import re

import phonenumbers

from hub.permissions import Permission, Role, has_permission
from hub.phones import DEFAULT_REGION

MASK = "*"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# 17 digits and a digit or X; the birth date in the middle keeps ordinary numbers out.
_NATIONAL_ID = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"\d{3}[\dXx](?![0-9A-Za-z])"
)
# Digit runs, optionally grouped by single spaces or dashes as people type card numbers.
# A run glued to letters by a dash is a reference (`CLM-2026-1107-55821`), not an account.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])(?<![A-Za-z]-)\d(?:[ -]?\d){11,}(?![0-9A-Za-z])")


# -- checks ---------------------------------------------------------------------------------


def is_luhn_valid(digits: str) -> bool:
    """Say whether a digit string passes the Luhn check that every card number passes."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_pan(value: str) -> bool:
    """Say whether `value` (spaces and dashes ignored) is a plausible card number."""
    digits = re.sub(r"[ -]", "", value)
    return 13 <= len(digits) <= 19 and is_luhn_valid(digits)


def is_national_id(value: str) -> bool:
    """Say whether `value` is an 18-character Chinese resident ID with a valid check digit."""
    value = value.strip().upper()
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17]


# -- fields ---------------------------------------------------------------------------------


def mask_pan(value: str) -> str:
    """Mask a card number, keeping the first 6 and last 4 digits (separators kept)."""
    return _keep_digits(value, first=6, last=4)


def mask_national_id(value: str) -> str:
    """Mask a national ID number, keeping the first 3 and last 4 characters."""
    value = value.strip()
    if len(value) <= 7:
        return MASK * len(value)
    return value[:3] + MASK * (len(value) - 7) + value[-4:]


def mask_account_number(value: str) -> str:
    """Mask an account number: a card number as a PAN, anything else down to its last 4."""
    if is_pan(value):
        return mask_pan(value)
    return _keep_digits(value, first=0, last=4)


def mask_phone(value: str, region: str = DEFAULT_REGION) -> str:
    """Mask a phone number as `+86 138****5678`; an unparseable one keeps only its last 4."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return _keep_digits(value, first=0, last=4)
    national = phonenumbers.national_significant_number(number)
    if len(national) < 5:
        return _keep_digits(value, first=0, last=2)
    first = 3 if len(national) >= 9 else 0
    last = 4 if len(national) >= 7 else 2
    hidden = MASK * (len(national) - first - last)
    return f"+{number.country_code} {national[:first]}{hidden}{national[-last:]}"


def mask_address(channel: str, address: str) -> str:
    """Mask a channel address: phone numbers as phones, anything else as free text."""
    if channel in {"sms", "whatsapp", "voice"}:
        return mask_phone(address)
    return mask_text(address)


# -- free text ------------------------------------------------------------------------------


def mask_text(text: str, region: str = DEFAULT_REGION) -> str:
    """Mask every card, ID, account and phone number found in free text.

    In order: ID numbers, Luhn-valid card numbers, phone numbers (libphonenumber's matcher),
    then any other run of 12+ digits. Masked digits become `*`, so masking an already masked
    text changes nothing.
    """
    if not text:
        return text
    text = _NATIONAL_ID.sub(lambda m: mask_national_id(m.group(0)), text)
    text = _DIGIT_RUN.sub(_mask_if_pan, text)
    text = _mask_phones(text, region)
    return _DIGIT_RUN.sub(lambda m: mask_account_number(m.group(0)), text)


def mask_for(role: Role, text: str) -> str:
    """Return `text` as a person of `role` may see it: masked unless the role may reveal.

    The contract masks chat text "for every role that may not reveal"; supervisors and
    admins (REVEAL_PII) see messages as written, while structured customer fields stay
    masked for everyone until an audited reveal.
    """
    if has_permission(role, Permission.REVEAL_PII):
        return text
    return mask_text(text)


def _mask_if_pan(match: re.Match[str]) -> str:
    value = match.group(0)
    # "+86 …" is a phone number even when its digits happen to pass the Luhn check.
    if match.start() > 0 and match.string[match.start() - 1] == "+":
        return value
    return mask_pan(value) if is_pan(value) else value


def _mask_phones(text: str, region: str) -> str:
    matches = list(
        phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    )
    if not matches:
        return text
    parts: list[str] = []
    position = 0
    for match in matches:
        parts.append(text[position : match.start])
        parts.append(_mask_phone_in_place(match.raw_string))
        position = match.end
    parts.append(text[position:])
    return "".join(parts)


def _mask_phone_in_place(raw: str) -> str:
    # Keep the writer's own spelling (spaces, brackets) and hide all but the first 3 and
    # last 4 digits of what they wrote, so the sentence still reads naturally.
    digits = sum(c.isdigit() for c in raw)
    first = 3 if digits >= 11 else (2 if digits >= 9 else 0)
    if raw.startswith("+"):
        first = max(first, 5)
    return _keep_digits(raw, first=first, last=4 if digits >= 8 else 2)


def _keep_digits(value: str, *, first: int, last: int) -> str:
    """Replace every digit except the first `first` and the last `last` with the mask."""
    total = sum(c.isdigit() for c in value)
    if total <= first + last:
        # Too short to keep that much: keep at most the last two.
        keep_from = max(total - 2, 0)
        first, last = 0, total - keep_from
    seen = 0
    out = []
    for char in value:
        if char.isdigit():
            seen += 1
            keep = seen <= first or seen > total - last
            out.append(char if keep else MASK)
        else:
            out.append(char)
    return "".join(out)
