"""Who is writing: find or create the customer behind a channel address."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import CustomerAddress, VerifiedIdentity
from hub.storage.models import AuditLog, Customer, Identity


async def identify(
    session: AsyncSession,
    address: CustomerAddress,
    verified: VerifiedIdentity | None,
    display_name: str | None = None,
) -> tuple[Customer, Identity]:
    """Return the customer and identity for `address`, creating them on first contact.

    A verified claim names the firm's customer; an address without one is an anonymous,
    unverified customer of its own. Anonymous addresses are never joined to anyone here:
    merging on weak evidence is an explicit, audited agent action.
    """
    identity = await _find_identity(session, address)
    now = utcnow()
    if verified is not None:
        customer = await _customer_by_external_id(session, verified.customer_id, display_name)
        if identity is None:
            identity = await _create_identity(session, customer, address, verified)
        elif identity.customer_id != customer.id or not identity.verified:
            session.add(
                AuditLog(
                    actor=f"identity:{verified.method}",
                    action="identity.verified_link",
                    subject_type="identity",
                    subject_id=str(identity.id),
                    details={"from_customer": identity.customer_id, "to_customer": customer.id},
                )
            )
            identity.customer_id = customer.id
            identity.verified = True
            identity.verified_method = verified.method
            identity.verified_at = now
        identity.last_seen_at = now
        return customer, identity
    if identity is None:
        customer = Customer(display_name=display_name, risk_tags=[], profile={})
        session.add(customer)
        await session.flush()
        identity = await _create_identity(session, customer, address, None)
    else:
        found = await session.get(Customer, identity.customer_id)
        assert found is not None  # foreign key
        customer = found
    identity.last_seen_at = now
    return customer, identity


async def _find_identity(session: AsyncSession, address: CustomerAddress) -> Identity | None:
    result: Identity | None = await session.scalar(
        select(Identity).where(
            Identity.channel == address.channel, Identity.address == address.address
        )
    )
    return result


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
        existing = await _find_identity(session, address)
        assert existing is not None
        return existing
    return identity
