"""OTP step-up: an unverified contact proves they hold the phone the firm has on record.

`start_otp` sends a 6-digit code by SMS to the number, if (and only if) it is the number of
exactly one of the firm's customers; the answer is the same either way, so the step cannot
be used to learn who banks here, and the hub never texts numbers it does not know. The
code is stored only as a keyed hash, lives 5 minutes and allows 5 tries. `verify_otp` then
links the contact's identity to that customer as verified, method `otp`.

The code goes out through an `SmsSender`: Twilio SMS when it is configured
(`channels.twilio_sms.TwilioSmsSender`, plugged in by the wiring), else the embedded
default's `LoggingSmsSender`. A code that could not be sent is an error the customer sees
("try again"), never a silent success they would wait on for five minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import CustomerAddress, VerifiedIdentity
from hub.errors import HubError, InvalidInput, RateLimited, ServiceUnavailable
from hub.phones import DEFAULT_REGION, PHONE_CHANNELS, normalise_phone
from hub.storage.database import Database
from hub.storage.models import AuditLog, Customer, Identity, OtpChallenge
from routing.identity import identify, link_verified

log = logging.getLogger(__name__)

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=5)
MAX_ATTEMPTS = 5
# Sending limits: a person asks for a code two or three times at most; more is abuse
# (SMS pumping costs the firm money and annoys the number's owner).
STARTS_PER_IDENTITY = 3
STARTS_PER_PHONE = 5
START_WINDOW = timedelta(minutes=15)
MESSAGE = {
    "zh": "您的验证码是{code}，5分钟内有效。请勿告诉任何人，我们的工作人员不会向您索取。",
    "en": "Your verification code is {code}. It expires in 5 minutes. "
    "Never share it; our staff will never ask for it.",
}
WRONG_CODE = "The code is not right or has expired; ask for a new one if needed."


class SmsSender(Protocol):
    """Sends one text message now (Twilio SMS in channels/twilio_sms.py)."""

    async def send_sms(self, to: str, text: str) -> None:
        """Send `text` to the E.164 number `to`; raise (a `HubError`, ideally) on failure."""


class LoggingSmsSender:
    """The embedded default: no SMS provider, so log that a code would have gone out.

    The code itself is never logged (anyone with the logs could verify as the customer).
    """

    async def send_sms(self, to: str, text: str) -> None:
        log.warning(
            "no SMS channel configured: a one-time code for the number ending %s was not sent",
            to[-4:],
        )


@dataclass(frozen=True)
class OtpStarted:
    """What the contact is told after asking for a code (the same whether or not one went)."""

    expires_at: datetime


@dataclass(frozen=True)
class PendingSms:
    to: str
    text: str


async def start_otp(
    session: AsyncSession,
    identity: Identity,
    phone: str,
    *,
    secret: str,
    language: str = "zh",
    region: str = DEFAULT_REGION,
) -> tuple[OtpStarted, PendingSms | None]:
    """Open a challenge for `identity` and return the SMS to send after commit, if any."""
    number = normalise_phone(phone, region)
    now = utcnow()
    await _check_start_rate(session, identity.id, number, now)
    # A new code replaces any earlier one still open for this contact.
    for old in await session.scalars(
        select(OtpChallenge).where(
            OtpChallenge.identity_id == identity.id, OtpChallenge.verified_at.is_(None)
        )
    ):
        old.attempts = MAX_ATTEMPTS
    expires_at = now + CODE_LIFETIME
    customer = await _customer_with_phone(session, number)
    session.add(
        AuditLog(
            actor=f"identity:{identity.id}",
            action="identity.otp_start",
            subject_type="identity",
            subject_id=str(identity.id),
            reason="customer asked to verify by SMS",
            details={"phone_last4": number[-4:], "matched": customer is not None},
        )
    )
    if customer is None:
        return OtpStarted(expires_at), None
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_hex(8)
    session.add(
        OtpChallenge(
            identity_id=identity.id,
            customer_id=customer.id,
            phone=number,
            code_hash=f"{salt}${_digest(secret, salt, code)}",
            created_at=now,
            expires_at=expires_at,
            attempts=0,
        )
    )
    text = MESSAGE.get(language, MESSAGE["zh"]).format(code=code)
    return OtpStarted(expires_at), PendingSms(number, text)


async def verify_otp(
    session: AsyncSession, identity: Identity, code: str, *, secret: str
) -> Customer | None:
    """Check `code`; on success link the identity to the customer (verified, `otp`).

    Returns the customer, or None when the code is wrong, expired or used up; every wrong
    try counts, so the caller must commit either way.
    """
    challenge = await session.scalar(
        select(OtpChallenge)
        .where(OtpChallenge.identity_id == identity.id, OtpChallenge.verified_at.is_(None))
        .order_by(OtpChallenge.id.desc())
        .limit(1)
    )
    now = utcnow()
    if challenge is None or challenge.attempts >= MAX_ATTEMPTS or challenge.expires_at <= now:
        return None
    challenge.attempts += 1
    salt, _, digest = challenge.code_hash.partition("$")
    candidate = code.strip()
    if not (candidate.isdigit() and hmac.compare_digest(digest, _digest(secret, salt, candidate))):
        return None
    customer = await session.get(Customer, challenge.customer_id)
    if customer is None or customer.merged_into_id is not None:
        return None
    challenge.verified_at = now
    await link_verified(session, identity, customer, "otp")
    return customer


class PhoneVerification:
    """The OTP step-up as channels use it (`channels.base.PhoneVerifier`)."""

    def __init__(
        self,
        database: Database,
        sender: SmsSender,
        *,
        secret: str,
        region: str = DEFAULT_REGION,
    ) -> None:
        self.database = database
        self.sender = sender  # replaceable: the SMS channel plugs in here
        self.secret = secret
        self.region = region

    async def start_verification(
        self, address: CustomerAddress, phone: str, language: str | None = None
    ) -> datetime:
        """Send a code to `phone` if it is a customer's; return when a code would expire."""
        async with self.database.write() as session:
            _, identity = await identify(session, address, None, region=self.region)
            started, sms = await start_otp(
                session,
                identity,
                phone,
                secret=self.secret,
                language=language or "zh",
                region=self.region,
            )
        if sms is not None:
            await self._send(sms)
        return started.expires_at

    async def _send(self, sms: PendingSms) -> None:
        # Only a known number gets a text, so a failure here tells the caller the number is
        # a customer's; but it happens only when the provider fails, which a caller cannot
        # cause, and telling a real customer "no code is coming" matters more.
        try:
            await self.sender.send_sms(sms.to, sms.text)
        except HubError:
            raise
        except Exception as error:
            log.exception("one-time code to the number ending %s was not sent", sms.to[-4:])
            raise ServiceUnavailable(
                "We could not send the code by SMS just now; please try again in a minute."
            ) from error

    async def check_verification(self, address: CustomerAddress, code: str) -> VerifiedIdentity:
        """Verify the code for this contact; raise `InvalidInput` when it is not right."""
        if not isinstance(code, str) or not code.strip().isdigit() or len(code.strip()) > 12:
            raise InvalidInput("The code is the 6 digits we sent by SMS.")
        async with self.database.write() as session:
            _, identity = await identify(session, address, None, region=self.region)
            customer = await verify_otp(session, identity, code, secret=self.secret)
            external_id = customer.external_id if customer is not None else None
        if external_id is None:
            raise InvalidInput(WRONG_CODE)
        return VerifiedIdentity(customer_id=external_id, method="otp")


async def _check_start_rate(
    session: AsyncSession, identity_id: int, number: str, now: datetime
) -> None:
    since = now - START_WINDOW
    by_identity = await session.scalar(
        select(func.count())
        .select_from(AuditLog)
        .where(
            AuditLog.action == "identity.otp_start",
            AuditLog.subject_id == str(identity_id),
            AuditLog.at >= since,
        )
    )
    by_phone = await session.scalar(
        select(func.count())
        .select_from(OtpChallenge)
        .where(OtpChallenge.phone == number, OtpChallenge.created_at >= since)
    )
    if int(by_identity or 0) >= STARTS_PER_IDENTITY or int(by_phone or 0) >= STARTS_PER_PHONE:
        raise RateLimited("Too many codes asked for; please wait 15 minutes and try again.")


async def _customer_with_phone(session: AsyncSession, number: str) -> Customer | None:
    """The one firm customer with this number on record (profile or phone identity)."""
    by_identity = select(Identity.customer_id).where(
        Identity.channel.in_(PHONE_CHANNELS), Identity.address == number
    )
    rows = list(
        await session.scalars(
            select(Customer).where(
                Customer.external_id.is_not(None),
                Customer.merged_into_id.is_(None),
                or_(Customer.profile["phone"].as_string() == number, Customer.id.in_(by_identity)),
            )
        )
    )
    # Two customers sharing a number (joint account, family phone): an OTP cannot tell
    # which one is writing, so it verifies neither.
    return rows[0] if len(rows) == 1 else None


def _digest(secret: str, salt: str, code: str) -> str:
    # Keyed with the hub's secret: a leaked table alone does not let anyone try the million
    # possible codes against the hashes.
    return hmac.new(secret.encode(), f"{salt}:{code}".encode(), hashlib.sha256).hexdigest()
