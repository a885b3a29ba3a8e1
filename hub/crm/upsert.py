"""Write imported customers into the database: upsert by the firm's id, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.crm.importer import PendingCustomer
from hub.crm.records import (
    AlertRecord,
    CaseRecord,
    HoldingRecord,
    IdentityRecord,
    TransactionRecord,
    customer_profile,
)
from hub.errors import ImportFailed
from hub.storage.models import (
    AuditLog,
    Conversation,
    Customer,
    CustomerAlert,
    CustomerCase,
    CustomerTransaction,
    Holding,
    Identity,
)

RowT = TypeVar("RowT")


@dataclass
class ImportReport:
    """What an import changed, by kind."""

    customers_created: int = 0
    customers_updated: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, count: int) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + count

    def describe(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        return f"{self.customers_created} customers created, {self.customers_updated} updated" + (
            f"; {kinds}" if kinds else ""
        )


async def store_customers(
    session: AsyncSession, batch: Sequence[PendingCustomer], *, actor: str
) -> ImportReport:
    """Upsert every customer in `batch`; raise `ImportFailed` (nothing kept) on a conflict."""
    report = ImportReport()
    for pending in batch:
        customer = await _upsert_customer(session, pending, report)
        items = pending.items
        if "identities" in items:
            await _link_identities(session, customer, items["identities"], actor)
            report.add("identities", len(items["identities"]))
        if "holdings" in items:
            await _replace_holdings(session, customer.id, _records(items["holdings"]))
            report.add("holdings", len(items["holdings"]))
        if "transactions" in items:
            await _replace_transactions(session, customer.id, _records(items["transactions"]))
            report.add("transactions", len(items["transactions"]))
        if "alerts" in items:
            await _replace_alerts(session, customer.id, _records(items["alerts"]))
            report.add("alerts", len(items["alerts"]))
        if "cases" in items:
            await _replace_cases(session, customer.id, _records(items["cases"]))
            report.add("cases", len(items["cases"]))
    session.add(
        AuditLog(
            actor=actor,
            action="crm.import",
            subject_type="customers",
            subject_id=str(len(batch)),
            reason="customer data imported from the firm's records",
            details={
                "created": report.customers_created,
                "updated": report.customers_updated,
                **report.counts,
            },
        )
    )
    await session.flush()
    return report


def _records(items: list[tuple[str, BaseModel]]) -> list[Any]:
    return [item for _, item in items]


async def _upsert_customer(
    session: AsyncSession, pending: PendingCustomer, report: ImportReport
) -> Customer:
    customer = await session.scalar(
        select(Customer).where(Customer.external_id == pending.external_id)
    )
    record = pending.record
    if customer is None:
        if record is None:
            raise ImportFailed(
                f"Nothing was imported: {pending.where}: there is no customer "
                f"{pending.external_id!r} (add them to customers.csv)."
            )
        customer = Customer(external_id=pending.external_id, risk_tags=[], profile={})
        session.add(customer)
        report.customers_created += 1
    elif record is not None:
        report.customers_updated += 1
    if record is not None:
        customer.display_name = record.name
        customer.segment = record.segment
        customer.language = record.language
        customer.risk_tags = list(record.risk_tags)
        customer.profile = customer_profile(record)
    await session.flush()
    return customer


async def _link_identities(
    session: AsyncSession,
    customer: Customer,
    items: list[tuple[str, BaseModel]],
    actor: str,
) -> None:
    """Add the firm's known addresses; take one over from an anonymous contact, audited."""
    for where, item in items:
        assert isinstance(item, IdentityRecord)
        identity = await session.scalar(
            select(Identity).where(
                Identity.channel == item.channel, Identity.address == item.address
            )
        )
        if identity is None:
            session.add(
                Identity(customer_id=customer.id, channel=item.channel, address=item.address)
            )
            continue
        if identity.customer_id == customer.id:
            continue
        owner = await session.get(Customer, identity.customer_id)
        if owner is not None and owner.external_id is not None:
            raise ImportFailed(
                f"Nothing was imported: {where}: {item.channel} address already belongs to "
                f"customer {owner.external_id!r}; fix it in the CRM or merge the records."
            )
        # The firm's own record says whose address this is: the contact who wrote from it
        # before the import was this customer, so their conversations come along.
        moved = list(
            await session.scalars(
                select(Conversation).where(Conversation.identity_id == identity.id)
            )
        )
        for conversation in moved:
            conversation.customer_id = customer.id
        session.add(
            AuditLog(
                actor=actor,
                action="identity.crm_link",
                subject_type="identity",
                subject_id=str(identity.id),
                reason="the firm's records name this address's customer",
                details={
                    "from_customer": identity.customer_id,
                    "to_customer": customer.id,
                    "conversations_moved": [c.id for c in moved],
                },
            )
        )
        identity.customer_id = customer.id
    await session.flush()


async def _replace(
    session: AsyncSession,
    model: Any,
    customer_id: int,
    records: Sequence[RowT],
    key_of_row: Callable[[Any], Hashable],
    key_of_record: Callable[[RowT], Hashable],
    build: Callable[[RowT], dict[str, Any]],
) -> None:
    """Make the customer's rows of `model` match `records`, keeping ids of matching rows."""
    existing = list(await session.scalars(select(model).where(model.customer_id == customer_id)))
    by_key: dict[Hashable, list[Any]] = {}
    for row in existing:
        by_key.setdefault(key_of_row(row), []).append(row)
    kept: set[int] = set()
    for record in records:
        values = build(record)
        matches = by_key.get(key_of_record(record))
        if matches:
            row = matches.pop(0)
            for name, value in values.items():
                setattr(row, name, value)
            kept.add(row.id)
        else:
            session.add(model(customer_id=customer_id, **values))
    for row in existing:
        if row.id not in kept:
            await session.delete(row)
    await session.flush()


async def _replace_holdings(
    session: AsyncSession, customer_id: int, records: list[HoldingRecord]
) -> None:
    await _replace(
        session,
        Holding,
        customer_id,
        records,
        lambda h: h.account_number or (h.kind, h.product_name),
        lambda r: r.account_number or (r.kind, r.product_name),
        lambda r: {
            "kind": r.kind,
            "product_name": r.product_name,
            "account_number": r.account_number,
            "amount": r.amount,
            "currency": r.currency,
            "maturity_date": r.maturity_date,
            "status": r.status,
            "details": {**r.details, **({"crm_id": r.id} if r.id else {})},
        },
    )


async def _replace_transactions(
    session: AsyncSession, customer_id: int, records: list[TransactionRecord]
) -> None:
    await _replace(
        session,
        CustomerTransaction,
        customer_id,
        records,
        lambda t: t.reference or (t.at, t.amount, t.description),
        lambda r: r.reference or (r.at, r.amount, r.description),
        lambda r: {
            "at": r.at,
            "description": r.description,
            "amount": r.amount,
            "currency": r.currency,
            "channel": r.channel,
            "reference": r.reference,
        },
    )


async def _replace_alerts(
    session: AsyncSession, customer_id: int, records: list[AlertRecord]
) -> None:
    now = utcnow()
    await _replace(
        session,
        CustomerAlert,
        customer_id,
        records,
        lambda a: (a.kind, a.text),
        lambda r: (r.kind, r.text),
        lambda r: {"kind": r.kind, "text": r.text, "at": r.at or now, "active": r.active},
    )


async def _replace_cases(
    session: AsyncSession, customer_id: int, records: list[CaseRecord]
) -> None:
    now = utcnow()
    await _replace(
        session,
        CustomerCase,
        customer_id,
        records,
        lambda c: c.external_ref or c.subject,
        lambda r: r.id or r.subject,
        lambda r: {
            "external_ref": r.id,
            "subject": r.subject,
            "status": r.status,
            "opened_at": r.opened_at or now,
            "closed_at": r.closed_at,
        },
    )
