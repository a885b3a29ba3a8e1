"""Conversations as the console sees them: `Message`, `ConversationSummary`, `ConversationDetail`.

The JSON shapes of docs/console-contract.md, built in one place for the HTTP API and the
`/agent` namespace alike. Every text passes through `agent_console.masking.mask_for` with
the viewer's role. Unread counts use the viewer's read marker: the latest
`conversation_events` row of kind `read` by that person (`data.message_id`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_console.masking import mask_address, mask_for
from hub.clock import utcnow
from hub.domain import Author, ConversationStatus
from hub.staff_auth import Staff
from hub.storage.models import Conversation, ConversationEvent, Customer, Identity, Message

READ_EVENT = "read"
DETAIL_MESSAGES = 500


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def message_json(message: Message, staff: Staff) -> dict[str, Any]:
    """A `Message` of the contract, its text masked as the viewer's role requires."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "author": message.author,
        "agent_id": message.agent_id,
        "text": mask_for(staff.role, message.text),
        "internal": message.internal,
        "sources": list(message.sources or []),
        "delivery_status": message.delivery_status,
        "delivery_error": message.delivery_error,
        "created_at": iso(message.created_at),
        "client_id": client_id_of(message),
    }


def client_id_of(message: Message) -> str | None:
    """The sender's idempotency key: `meta.client_id`, or the web chat's `address/client_id`."""
    stored = (message.meta or {}).get("client_id")
    if isinstance(stored, str):
        return stored
    if message.channel_message_id and "/" in message.channel_message_id:
        return message.channel_message_id.split("/", 1)[1]
    return None


def waiting_seconds(conversation: Conversation, now: datetime | None = None) -> int | None:
    """Seconds from handoff to accept, or to now while still queued."""
    if conversation.handoff_at is None:
        return None
    end = conversation.accepted_at
    if end is None and conversation.status == ConversationStatus.QUEUED:
        end = now or utcnow()
    if end is None:
        return None
    return max(int((end - conversation.handoff_at).total_seconds()), 0)


async def conversation_summaries(
    session: AsyncSession, conversations: Sequence[Conversation], staff: Staff
) -> list[dict[str, Any]]:
    """`ConversationSummary` for each conversation, with a handful of queries in all."""
    if not conversations:
        return []
    ids = [c.id for c in conversations]
    customers = {
        c.id: c
        for c in await session.scalars(
            select(Customer).where(Customer.id.in_({c.customer_id for c in conversations}))
        )
    }
    last_ids = select(func.max(Message.id)).where(Message.conversation_id.in_(ids))
    last = {
        m.conversation_id: m
        for m in await session.scalars(
            select(Message).where(Message.id.in_(last_ids.group_by(Message.conversation_id)))
        )
    }
    markers = await _read_markers(session, ids, staff)
    unread = await _unread_counts(session, ids, markers)
    now = utcnow()
    return [
        _summary(c, customers.get(c.customer_id), last.get(c.id), unread.get(c.id, 0), staff, now)
        for c in conversations
    ]


async def conversation_summary(
    session: AsyncSession, conversation: Conversation, staff: Staff
) -> dict[str, Any]:
    """`ConversationSummary` of one conversation."""
    return (await conversation_summaries(session, [conversation], staff))[0]


async def conversation_detail(
    session: AsyncSession, conversation: Conversation, staff: Staff
) -> dict[str, Any]:
    """`ConversationDetail`: summary, messages (notes included), timeline, handoff, verification."""
    body = await conversation_summary(session, conversation, staff)
    rows = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation.id)
        .order_by(Message.id.desc())
        .limit(DETAIL_MESSAGES)
    )
    events = await session.scalars(
        select(ConversationEvent)
        .where(
            ConversationEvent.conversation_id == conversation.id,
            ConversationEvent.kind != READ_EVENT,
        )
        .order_by(ConversationEvent.id)
    )
    identity = await session.get(Identity, conversation.identity_id)
    body["messages"] = [message_json(m, staff) for m in reversed(list(rows))]
    body["events"] = [event_json(e, staff) for e in events]
    body["handoff"] = conversation.handoff_context
    body["verification"] = verification_json(conversation, identity)
    return body


def event_json(event: ConversationEvent, staff: Staff) -> dict[str, Any]:
    data = dict(event.data or {})
    for key in ("note", "text", "reason"):
        if isinstance(data.get(key), str):
            data[key] = mask_for(staff.role, data[key])
    return {
        "id": event.id,
        "kind": event.kind,
        "at": iso(event.at),
        "agent_id": event.agent_id,
        "data": data,
    }


def verification_json(conversation: Conversation, identity: Identity | None) -> dict[str, Any]:
    """How the contact's identity was established, with the address masked."""
    if identity is None:
        return {"verified": False, "method": None, "channel": conversation.channel}
    return {
        "verified": bool(conversation.verified and identity.verified),
        "method": identity.verified_method if identity.verified else None,
        "channel": identity.channel,
        "address_masked": mask_address(identity.channel, identity.address),
    }


def _summary(
    conversation: Conversation,
    customer: Customer | None,
    last: Message | None,
    unread: int,
    staff: Staff,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "status": conversation.status,
        "channel": conversation.channel,
        "skill": conversation.skill,
        "priority": conversation.priority,
        "topic": conversation.topic,
        "language": conversation.language,
        "customer": {
            "id": conversation.customer_id,
            "display_name": customer.display_name if customer else None,
            "segment": customer.segment if customer else None,
            "verified": conversation.verified,
        },
        "assigned_agent_id": conversation.assigned_agent_id,
        "offered_agent_id": conversation.offered_agent_id,
        "opened_at": iso(conversation.opened_at),
        "handoff_at": iso(conversation.handoff_at),
        "accepted_at": iso(conversation.accepted_at),
        "waiting_seconds": waiting_seconds(conversation, now),
        "last_message": (
            {
                "author": last.author,
                "text": mask_for(staff.role, last.text),
                "created_at": iso(last.created_at),
            }
            if last is not None
            else None
        ),
        "unread": unread,
    }


async def _read_markers(
    session: AsyncSession, conversation_ids: list[int], staff: Staff
) -> dict[int, int]:
    rows = await session.scalars(
        select(ConversationEvent)
        .where(
            ConversationEvent.conversation_id.in_(conversation_ids),
            ConversationEvent.kind == READ_EVENT,
            ConversationEvent.agent_id == staff.agent_id,
        )
        .order_by(ConversationEvent.id)
    )
    markers: dict[int, int] = {}
    for event in rows:
        message_id = (event.data or {}).get("message_id")
        if isinstance(message_id, int):
            markers[event.conversation_id] = max(markers.get(event.conversation_id, 0), message_id)
    return markers


async def _unread_counts(
    session: AsyncSession, conversation_ids: list[int], markers: dict[int, int]
) -> dict[int, int]:
    """Customer messages after the viewer's read marker (all of them when there is none)."""
    rows = await session.execute(
        select(Message.conversation_id, Message.id).where(
            Message.conversation_id.in_(conversation_ids), Message.author == Author.CUSTOMER
        )
    )
    counts: dict[int, int] = {}
    for conversation_id, message_id in rows:
        if message_id > markers.get(conversation_id, 0):
            counts[conversation_id] = counts.get(conversation_id, 0) + 1
    return counts
