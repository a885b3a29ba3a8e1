"""The customer 360: who the customer is and everything the agent needs, masked and audited.

`customer_360` assembles the contract's `Customer360` from the directory (the CRM or the
hub's copy) and the hub's own conversations, and writes the `customer.context.view` audit
row — who looked, at whom, when and why — in the same transaction, so there is no view
without its record. `reveal` returns one full number and writes `customer.reveal`.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_console.access import CustomerAction, access_customer
from agent_console.masking import (
    mask_account_number,
    mask_address,
    mask_national_id,
    mask_phone,
    mask_text,
)
from agent_console.views import iso
from hub.crm.directory import CustomerDirectory, DirectoryEntry, HoldingEntry
from hub.errors import InvalidInput, NotFound
from hub.phones import PHONE_CHANNELS
from hub.staff_auth import Staff
from hub.storage.database import Database
from hub.storage.models import AuditLog, Conversation, Customer, Identity
from routing.identity import suggest_matches

RevealField = Literal["phone", "national_id", "account_number"]
CONTACTS_SHOWN = 50
MIN_REASON_CHARS = 5


async def view_customer_360(
    database: Database,
    directory: CustomerDirectory,
    staff: Staff,
    customer_id: int,
    *,
    conversation_id: int | None,
    reason: str | None,
) -> dict[str, Any]:
    """Check access, ask the directory, then build the 360 and audit the view.

    The directory (perhaps a CRM over HTTP) is asked outside any transaction, so a slow
    CRM never holds a database writer.
    """
    why = _reason_for_view(conversation_id, reason)
    async with database.read() as session:
        customer = await access_customer(
            session, staff, customer_id, CustomerAction.READ, conversation_id
        )
    entry = await directory.lookup(customer)
    async with database.write() as session:
        return await customer_360(
            session, entry, staff, customer, conversation_id=conversation_id, reason=why
        )


async def reveal_number(
    database: Database,
    directory: CustomerDirectory,
    staff: Staff,
    customer_id: int,
    *,
    field: RevealField,
    holding_id: str | None,
    reason: str,
) -> str:
    """Check the reveal right, ask the directory, then return the number and audit it."""
    async with database.read() as session:
        customer = await access_customer(session, staff, customer_id, CustomerAction.REVEAL)
    entry = await directory.lookup(customer)
    async with database.write() as session:
        return await reveal(
            session, entry, staff, customer, field=field, holding_id=holding_id, reason=reason
        )


async def customer_360(
    session: AsyncSession,
    entry: DirectoryEntry,
    staff: Staff,
    customer: Customer,
    *,
    conversation_id: int | None,
    reason: str,
) -> dict[str, Any]:
    """Build the `Customer360` JSON and record the view in the audit log."""
    why = _reason_for_view(conversation_id, reason)
    identities = await session.scalars(
        select(Identity).where(Identity.customer_id == customer.id).order_by(Identity.id)
    )
    contacts = await session.scalars(
        select(Conversation)
        .where(Conversation.customer_id == customer.id)
        .order_by(Conversation.opened_at.desc(), Conversation.id.desc())
        .limit(CONTACTS_SHOWN)
    )
    matches = await suggest_matches(session, customer.id)
    session.add(
        AuditLog(
            actor=staff.actor,
            action="customer.context.view",
            subject_type="customer",
            subject_id=str(customer.id),
            reason=why,
            details={
                "conversation_id": conversation_id,
                "role": staff.role.value,
                "source": entry.source,
                "degraded": entry.degraded,
            },
        )
    )
    return {
        "customer": _customer_json(customer, entry),
        "identities": [
            {
                "channel": i.channel,
                "address": mask_address(i.channel, i.address),
                "verified": i.verified,
                "method": i.verified_method if i.verified else None,
            }
            for i in identities
        ],
        "holdings": [_holding_json(h) for h in entry.holdings],
        "transactions": [
            {
                "at": iso(t.at),
                "description": mask_text(t.description),
                "amount": str(t.amount),
                "currency": t.currency,
                "channel": t.channel,
                "reference": t.reference,
            }
            for t in entry.transactions
        ],
        "alerts": [
            {"kind": a.kind, "text": mask_text(a.text), "at": iso(a.at), "active": a.active}
            for a in entry.alerts
        ],
        "cases": [
            {
                "id": c.id,
                "subject": mask_text(c.subject),
                "status": c.status,
                "opened_at": iso(c.opened_at),
                "closed_at": iso(c.closed_at),
            }
            for c in entry.cases
        ],
        "contacts": [_contact_json(c) for c in contacts],
        "suggested_matches": [m.to_json() for m in matches],
        "source": {"kind": entry.source, "degraded": entry.degraded, "notes": list(entry.notes)},
    }


async def reveal(
    session: AsyncSession,
    entry: DirectoryEntry,
    staff: Staff,
    customer: Customer,
    *,
    field: RevealField,
    holding_id: str | None,
    reason: str,
) -> str:
    """Return one full number and record who saw it, when and why (`customer.reveal`)."""
    reason = reason.strip()
    if len(reason) < MIN_REASON_CHARS:
        raise InvalidInput(f"Say why you need the full number ({MIN_REASON_CHARS}+ characters).")
    value: Any
    if field == "account_number":
        if not holding_id:
            raise InvalidInput("Name the holding whose account number to reveal (holding_id).")
        holding = next((h for h in entry.holdings if h.id == str(holding_id)), None)
        if holding is None:
            raise NotFound("This customer has no such holding.")
        value = holding.account_number
    else:
        value = entry.profile.get(field)
    if field == "phone" and not value:
        # No number in the firm's records: the one the customer contacts us from.
        value = await session.scalar(
            select(Identity.address)
            .where(Identity.customer_id == customer.id, Identity.channel.in_(PHONE_CHANNELS))
            .order_by(Identity.id)
            .limit(1)
        )
    if not isinstance(value, str) or not value:
        raise NotFound(f"There is no {field.replace('_', ' ')} on record for this customer.")
    session.add(
        AuditLog(
            actor=staff.actor,
            action="customer.reveal",
            subject_type="customer",
            subject_id=str(customer.id),
            reason=reason,
            details={"field": field, "holding_id": holding_id, "role": staff.role.value},
        )
    )
    return value


def _reason_for_view(conversation_id: int | None, reason: str | None) -> str:
    reason = (reason or "").strip()
    if reason:
        if len(reason) < MIN_REASON_CHARS:
            raise InvalidInput(f"reason must be at least {MIN_REASON_CHARS} characters.")
        return reason
    if conversation_id is None:
        # Outside a conversation there is no self-evident purpose; the auditor needs one.
        raise InvalidInput("Give conversation_id, or a reason for looking at this customer.")
    return f"serving conversation {conversation_id}"


def _customer_json(customer: Customer, entry: DirectoryEntry) -> dict[str, Any]:
    return {
        "id": customer.id,
        "external_id": customer.external_id,
        "display_name": entry.display_name or customer.display_name,
        "segment": entry.segment,
        "risk_tags": list(entry.risk_tags),
        "risk_preference": entry.risk_preference,
        "language": entry.language or customer.language,
        "merged_into_id": customer.merged_into_id,
        "profile": _profile_json(entry.profile),
    }


def _profile_json(profile: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, value in profile.items():
        if key == "risk_preference":
            continue
        if key == "phone" and isinstance(value, str):
            shown[key] = mask_phone(value)
        elif key == "national_id" and isinstance(value, str):
            shown[key] = mask_national_id(value)
        elif isinstance(value, str):
            shown[key] = mask_text(value)
        else:
            shown[key] = value
    return shown


def _holding_json(holding: HoldingEntry) -> dict[str, Any]:
    return {
        "id": holding.id,
        "kind": holding.kind,
        "product_name": holding.product_name,
        "account_number": (
            mask_account_number(holding.account_number) if holding.account_number else None
        ),
        "amount": str(holding.amount) if holding.amount is not None else None,
        "currency": holding.currency,
        "maturity_date": holding.maturity_date.isoformat() if holding.maturity_date else None,
        "status": holding.status,
        "details": {
            k: mask_text(v) if isinstance(v, str) else v for k, v in holding.details.items()
        },
    }


def _contact_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation_id": conversation.id,
        "channel": conversation.channel,
        "opened_at": iso(conversation.opened_at),
        "closed_at": iso(conversation.closed_at),
        "topic": conversation.topic,
        "status": conversation.status,
        "resolution": conversation.resolution,
        "csat_score": conversation.csat_score,
        "handoff": conversation.handoff_at is not None,
    }
