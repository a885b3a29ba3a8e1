"""Who is writing: one customer across channels, and how sure we are of it.

* Phone channels (SMS, WhatsApp, voice) key identities by the E.164 number, so a text, a
  call and a WhatsApp message from one number are one customer: a new phone identity joins
  the one customer who already has that exact number on another phone channel.
* The firm's signed tokens (web, app) and an OTP step-up over SMS are *verified* links.
* Everything else — a social handle, an anonymous web visitor — stays a customer of its own
  until verified. Joining two existing customer records on weaker evidence is never
  automatic: `suggest_matches` proposes, a person confirms with `merge_customers`, and
  `undo_merge` puts back exactly what the merge moved (see `routing/merges.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import CustomerAddress, VerifiedIdentity
from hub.phones import DEFAULT_REGION, PHONE_CHANNELS, is_phone_channel, normalise_address
from hub.storage.models import AuditLog, Conversation, Customer, Identity

# An OTP proves who held the phone at that moment; a web visitor id is only a browser
# cookie. So an OTP-verified visitor identity counts as verified for this long, after
# which a new contact from the same browser must verify again.
OTP_VERIFICATION_LIFETIME = timedelta(hours=1)
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class SuggestedMatch:
    """Another customer record that may be the same person, with the evidence for it."""

    customer_id: int
    display_name: str | None
    evidence: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "display_name": self.display_name,
            "evidence": list(self.evidence),
        }


async def identify(
    session: AsyncSession,
    address: CustomerAddress,
    verified: VerifiedIdentity | None,
    display_name: str | None = None,
    *,
    region: str = DEFAULT_REGION,
) -> tuple[Customer, Identity]:
    """Return the customer and identity for `address`, creating them on first contact.

    A verified claim names the firm's customer. A new phone number joins the customer who
    has that number on another phone channel (when exactly one does). Any other new address
    is an anonymous, unverified customer of its own.
    """
    address = CustomerAddress(
        address.channel, normalise_address(address.channel, address.address, region)
    )
    identity, known = await _identity_and_customer(session, address)
    now = utcnow()
    if verified is not None:
        customer = await _customer_by_external_id(session, verified.customer_id, display_name)
        if identity is None:
            identity = await _create_identity(session, customer, address, verified)
        elif identity.customer_id != customer.id or not identity.verified:
            await link_verified(session, identity, customer, verified.method)
        _seen(identity, now)
        return customer, identity
    if identity is None:
        same_phone = await _same_phone_customer(session, address)
        if same_phone is not None:
            customer = same_phone
        else:
            customer = Customer(display_name=display_name, risk_tags=[], profile={})
            session.add(customer)
            await session.flush()
        identity = await _create_identity(session, customer, address, None)
    else:
        assert known is not None  # foreign key
        customer = known
        _lapse_stale_otp(session, identity)
    _seen(identity, now)
    return customer, identity


# Built once: the general path runs it for every message `routing/continuing.py` does not
# take, and building a statement (with its cache key) costs SQLAlchemy about as much CPU as
# executing it (docs/benchmarks.md, "the answered turn without the ORM").
_IDENTITY_AND_CUSTOMER = (
    select(Identity, Customer)
    .join(Customer, Customer.id == Identity.customer_id)
    .where(Identity.channel == bindparam("channel"), Identity.address == bindparam("address"))
)


async def _identity_and_customer(
    session: AsyncSession, address: CustomerAddress
) -> tuple[Identity | None, Customer | None]:
    """The identity stored for `address` with its customer, in one query."""
    parameters = {"channel": address.channel, "address": address.address}
    row = (await session.execute(_IDENTITY_AND_CUSTOMER, parameters)).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _seen(identity: Identity, now: datetime) -> None:
    """Record that the contact wrote; to the minute, so a chat does not rewrite it each line."""
    last = identity.last_seen_at
    if last is None or now - last >= LAST_SEEN_RESOLUTION:
        identity.last_seen_at = now


async def find_identity(session: AsyncSession, address: CustomerAddress) -> Identity | None:
    """The identity stored for exactly this (channel, address), if any."""
    result: Identity | None = await session.scalar(
        select(Identity).where(
            Identity.channel == address.channel, Identity.address == address.address
        )
    )
    return result


async def known_language(session: AsyncSession, address: CustomerAddress) -> str | None:
    """The language of the customer at `address` (or with this number on a phone channel)."""
    identity = await find_identity(session, address)
    if identity is not None:
        customer = await session.get(Customer, identity.customer_id)
    else:
        customer = await _same_phone_customer(session, address)
    while customer is not None and customer.merged_into_id is not None:
        customer = await session.get(Customer, customer.merged_into_id)
    return customer.language if customer is not None else None


async def link_verified(
    session: AsyncSession, identity: Identity, customer: Customer, method: str
) -> None:
    """Link `identity` to `customer` as verified by `method` ("token", "otp"), audited.

    The identity's conversations that are still open move with it, so the agent serving
    the contact sees the customer it has just been proven to be.
    """
    previous = identity.customer_id
    moved: list[int] = []
    if previous != customer.id:
        rows = await session.scalars(
            select(Conversation).where(
                Conversation.identity_id == identity.id, Conversation.closed_at.is_(None)
            )
        )
        for conversation in rows:
            conversation.customer_id = customer.id
            moved.append(conversation.id)
    identity.customer_id = customer.id
    identity.verified = True
    identity.verified_method = method
    identity.verified_at = utcnow()
    for conversation_id in moved:
        current = await session.get(Conversation, conversation_id)
        if current is not None:
            current.verified = True
    session.add(
        AuditLog(
            actor=f"identity:{method}",
            action="identity.verified_link",
            subject_type="identity",
            subject_id=str(identity.id),
            reason=f"verified by {method}",
            details={
                "from_customer": previous,
                "to_customer": customer.id,
                "conversations_moved": moved,
            },
        )
    )
    await session.flush()


async def suggest_matches(
    session: AsyncSession, customer_id: int, limit: int = 5
) -> list[SuggestedMatch]:
    """Other live customer records that may be this person, strongest evidence first.

    Evidence is a shared phone number (identity or profile), e-mail or national ID; a shared
    name only adds to other evidence, since names are not unique. Nothing here merges.
    """
    customer = await session.get(Customer, customer_id)
    if customer is None:
        return []
    mine = await _facts(session, customer)
    if not any(mine[kind] for kind in ("phone", "email", "national_id")):
        return []
    evidence: dict[int, set[str]] = {}
    for other_id, kind in await _customers_sharing(session, customer.id, mine):
        evidence.setdefault(other_id, set()).add(kind)
    matches: list[SuggestedMatch] = []
    for other_id, kinds in evidence.items():
        other = await session.get(Customer, other_id)
        if other is None or other.merged_into_id is not None:
            continue
        if customer.display_name and other.display_name == customer.display_name:
            kinds.add("same name")
        matches.append(SuggestedMatch(other.id, other.display_name, tuple(sorted(kinds))))
    matches.sort(key=lambda m: (-len(m.evidence), m.customer_id))
    return matches[:limit]


# -- internals ----------------------------------------------------------------------------


def _lapse_stale_otp(session: AsyncSession, identity: Identity) -> None:
    if not identity.verified or identity.verified_method != "otp":
        return
    if is_phone_channel(identity.channel):
        return
    verified_at = identity.verified_at
    if verified_at is not None and utcnow() - verified_at <= OTP_VERIFICATION_LIFETIME:
        return
    identity.verified = False
    session.add(
        AuditLog(
            actor="identity:otp",
            action="identity.verification_lapsed",
            subject_type="identity",
            subject_id=str(identity.id),
            reason="OTP verification older than the allowed lifetime",
            details={"customer": identity.customer_id},
        )
    )


async def _same_phone_customer(session: AsyncSession, address: CustomerAddress) -> Customer | None:
    """The one live customer with this exact number on another phone channel, if exactly one."""
    if not is_phone_channel(address.channel) or not address.address.startswith("+"):
        return None
    owners = set(
        await session.scalars(
            select(Identity.customer_id).where(
                Identity.channel.in_(PHONE_CHANNELS), Identity.address == address.address
            )
        )
    )
    if len(owners) != 1:
        # Two records claim the number: a person must decide (suggested matches will say).
        return None
    customer = await session.get(Customer, owners.pop())
    if customer is None or customer.merged_into_id is not None:
        return None
    return customer


async def _facts(session: AsyncSession, customer: Customer) -> dict[str, set[str]]:
    profile = customer.profile or {}
    phones = set(
        await session.scalars(
            select(Identity.address).where(
                Identity.customer_id == customer.id, Identity.channel.in_(PHONE_CHANNELS)
            )
        )
    )
    if isinstance(profile.get("phone"), str):
        phones.add(normalise_address("sms", profile["phone"]))
    email = profile.get("email")
    national_id = profile.get("national_id")
    return {
        "phone": {p for p in phones if p.startswith("+")},
        "email": {email.strip().lower()} if isinstance(email, str) and email.strip() else set(),
        "national_id": (
            {national_id.strip().upper()}
            if isinstance(national_id, str) and national_id.strip()
            else set()
        ),
    }


async def _customers_sharing(
    session: AsyncSession, customer_id: int, mine: dict[str, set[str]]
) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    if mine["phone"]:
        rows = await session.scalars(
            select(Identity.customer_id).where(
                Identity.channel.in_(PHONE_CHANNELS),
                Identity.address.in_(mine["phone"]),
                Identity.customer_id != customer_id,
            )
        )
        found += [(other, "same phone") for other in rows]
    # Profile facts are JSON fields (the importer stores phones as E.164); both databases
    # compare them in SQL.
    profile = Customer.profile
    for label, column, values in (
        ("same phone", profile["phone"].as_string(), mine["phone"]),
        ("same email", func.lower(profile["email"].as_string()), mine["email"]),
        ("same national ID", func.upper(profile["national_id"].as_string()), mine["national_id"]),
    ):
        if not values:
            continue
        rows = await session.scalars(
            select(Customer.id).where(
                Customer.id != customer_id,
                Customer.merged_into_id.is_(None),
                column.in_(sorted(values)),
            )
        )
        found += [(other, label) for other in rows]
    return found


async def _customer_by_external_id(
    session: AsyncSession, external_id: str, display_name: str | None
) -> Customer:
    customer = await session.scalar(select(Customer).where(Customer.external_id == external_id))
    if customer is not None:
        return customer
    # The firm vouched for a customer the hub has not imported yet: remember them.
    customer = Customer(
        external_id=external_id, display_name=display_name, risk_tags=[], profile={}
    )
    try:
        async with session.begin_nested():
            session.add(customer)
    except IntegrityError:
        existing = await session.scalar(select(Customer).where(Customer.external_id == external_id))
        assert existing is not None
        return existing
    return customer


async def _create_identity(
    session: AsyncSession,
    customer: Customer,
    address: CustomerAddress,
    verified: VerifiedIdentity | None,
) -> Identity:
    identity = Identity(
        customer_id=customer.id,
        channel=address.channel,
        address=address.address,
        verified=verified is not None,
        verified_method=verified.method if verified else None,
        verified_at=utcnow() if verified else None,
    )
    try:
        async with session.begin_nested():
            session.add(identity)
    except IntegrityError:
        # Another hub process registered the same address a moment ago.
        existing = await find_identity(session, address)
        assert existing is not None
        return existing
    return identity
