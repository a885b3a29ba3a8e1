"""Merging two customer records, and undoing it exactly.

A merge is always a person's explicit decision with a reason (never automatic: see
`routing/identity.py`). It moves everything of the merged record — identities,
conversations, holdings, transactions, alerts, cases — to the survivor, and records the
ids it moved in `CustomerMerge.moved`, so `undo_merge` moves back exactly those rows (and
any conversation opened since on a moved identity) and nothing else. Both are audited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.storage.models import (
    AuditLog,
    Conversation,
    Customer,
    CustomerAlert,
    CustomerCase,
    CustomerMerge,
    CustomerTransaction,
    Holding,
    Identity,
)

# What belongs to a customer, by the key `CustomerMerge.moved` records it under.
OWNED: dict[str, Any] = {
    "identities": Identity,
    "conversations": Conversation,
    "holdings": Holding,
    "transactions": CustomerTransaction,
    "alerts": CustomerAlert,
    "cases": CustomerCase,
}
MIN_REASON_CHARS = 5


async def merge_customers(
    session: AsyncSession,
    customer_id: int,
    other_customer_id: int,
    *,
    reason: str,
    actor: str,
    agent_id: int | None,
) -> CustomerMerge:
    """Merge two customer records into one; return the merge (its `survivor_id` says which).

    The firm's own customer (one with an external id) survives; two of the firm's customers
    are never merged here, since the CRM is their system of record. Otherwise the record
    asked about (`customer_id`) survives.
    """
    reason = _checked_reason(reason)
    if customer_id == other_customer_id:
        raise InvalidInput("A customer cannot be merged with itself.")
    first = await _live_customer(session, customer_id)
    second = await _live_customer(session, other_customer_id)
    if first.external_id and second.external_id:
        raise Conflict(
            "Both records are the firm's customers; merge them in the CRM, not in the hub."
        )
    survivor, merged = (second, first) if second.external_id else (first, second)
    moved: dict[str, list[int]] = {}
    for key, model in OWNED.items():
        ids = sorted(await session.scalars(select(model.id).where(model.customer_id == merged.id)))
        if ids:
            await session.execute(
                update(model).where(model.id.in_(ids)).values(customer_id=survivor.id)
            )
        moved[key] = ids
    merged.merged_into_id = survivor.id
    merge = CustomerMerge(
        survivor_id=survivor.id,
        merged_id=merged.id,
        merged_by=agent_id,
        reason=reason,
        at=utcnow(),
        moved=moved,
    )
    session.add(merge)
    await session.flush()
    session.add(
        AuditLog(
            actor=actor,
            action="customer.merge",
            subject_type="customer",
            subject_id=str(survivor.id),
            reason=reason,
            details={
                "merge_id": merge.id,
                "merged_id": merged.id,
                "moved": {k: len(v) for k, v in moved.items()},
            },
        )
    )
    return merge


async def undo_merge(
    session: AsyncSession, merge_id: int, *, reason: str, actor: str, agent_id: int | None
) -> CustomerMerge:
    """Split a merge: move back exactly what it moved, and revive the merged record."""
    reason = _checked_reason(reason)
    merge = await session.get(CustomerMerge, merge_id, with_for_update=True)
    if merge is None:
        raise NotFound("There is no such merge.")
    if merge.undone_at is not None:
        raise Conflict("This merge was already undone.")
    merged = await session.get(Customer, merge.merged_id, with_for_update=True)
    assert merged is not None  # foreign key
    moved: dict[str, list[int]] = {k: list(v) for k, v in (merge.moved or {}).items()}
    await _check_still_with_survivor(session, merge, moved)
    # Conversations opened since the merge on an identity that goes back go back with it.
    later = await session.scalars(
        select(Conversation.id).where(
            Conversation.identity_id.in_(moved.get("identities", [])),
            Conversation.customer_id == merge.survivor_id,
        )
    )
    moved_back = {**moved, "conversations": sorted({*moved.get("conversations", []), *later})}
    for key, ids in moved_back.items():
        model = OWNED.get(key)
        if model is None or not ids:
            continue
        await session.execute(
            update(model)
            .where(model.id.in_(ids), model.customer_id == merge.survivor_id)
            .values(customer_id=merged.id)
        )
    merged.merged_into_id = None
    merge.undone_at = utcnow()
    merge.undone_by = agent_id
    session.add(
        AuditLog(
            actor=actor,
            action="customer.merge_undo",
            subject_type="customer",
            subject_id=str(merge.survivor_id),
            reason=reason,
            details={
                "merge_id": merge.id,
                "merged_id": merged.id,
                "moved_back": {k: len(v) for k, v in moved_back.items()},
            },
        )
    )
    await session.flush()
    return merge


async def _check_still_with_survivor(
    session: AsyncSession, merge: CustomerMerge, moved: dict[str, list[int]]
) -> None:
    """Refuse when a later merge carried some moved rows on to a third record."""
    for key, ids in moved.items():
        model = OWNED.get(key)
        if model is None or not ids:
            continue
        elsewhere = await session.scalar(
            select(model.id)
            .where(model.id.in_(ids), model.customer_id != merge.survivor_id)
            .limit(1)
        )
        if elsewhere is not None:
            raise Conflict(
                "Some of what this merge moved has since moved on (a later merge); "
                "undo that merge first."
            )


async def _live_customer(session: AsyncSession, customer_id: int) -> Customer:
    customer = await session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise NotFound(f"There is no customer {customer_id}.")
    if customer.merged_into_id is not None:
        raise Conflict(
            f"Customer {customer_id} was merged into {customer.merged_into_id}; use that record."
        )
    return customer


def _checked_reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) < MIN_REASON_CHARS:
        raise InvalidInput(f"Give a reason of at least {MIN_REASON_CHARS} characters.")
    return reason
