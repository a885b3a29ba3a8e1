"""Who may do what to which conversation or customer: one access function per resource.

Every HTTP handler and every Socket.IO event asks here and nowhere else
(docs/console-contract.md, "Roles and permissions"). The rules:

* a role without the permission at all (an editor asking for a conversation) gets 403
  `forbidden`;
* an agent may read a conversation assigned to them or offered to them (until the offer
  expires), and act on it (reply, note, transfer, wrap up) only while it is assigned to
  them; anything else is 404 `not_found`, so an agent cannot even learn that another
  agent's conversation exists;
* supervisors and admins may read and act on any conversation;
* a customer's data (360, reveal, merge) follows the conversations: an agent reaches a
  customer only through a live conversation with them assigned or offered to the agent.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import ConversationStatus
from hub.errors import Conflict, Forbidden, NotFound
from hub.permissions import Permission, has_permission
from hub.staff_auth import Staff
from hub.storage.models import Conversation, Customer
from routing.identity import suggest_matches


class ConversationAction(StrEnum):
    """What a staff member wants to do with a conversation."""

    READ = "read"  # detail, messages, timeline, KB suggestions
    WRITE = "write"  # send, note, typing, read marker, transfer, wrap-up
    ANSWER_OFFER = "answer_offer"  # accept or decline an offer made to this person
    TAKE_OVER = "take_over"  # become the assigned agent (supervisors)
    WATCH = "watch"  # join any conversation live (supervisors)


class CustomerAction(StrEnum):
    """What a staff member wants to do with a customer record."""

    READ = "read"  # the customer 360
    REVEAL = "reveal"  # see a full card, ID or phone number
    MERGE = "merge"  # merge with another customer record, or undo a merge


_NOT_FOUND = "There is no such conversation."
_NO_CUSTOMER = "There is no such customer."


async def access_conversation(
    session: AsyncSession, staff: Staff, conversation_id: int, action: ConversationAction
) -> Conversation:
    """Return the conversation if `staff` may do `action` to it; raise otherwise.

    Raises `Forbidden` when the role may never do `action`, `NotFound` when the
    conversation does not exist or the agent may not know it does, and `Conflict` when a
    supervisor answers an offer that was not made to them.
    """
    _require_role_for(staff, action)
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(_NOT_FOUND)
    sees_all = has_permission(staff.role, Permission.SEE_ALL_CONVERSATIONS)
    if action == ConversationAction.ANSWER_OFFER:
        if _is_offered_to(conversation, staff):
            return conversation
        if sees_all:
            raise Conflict("This conversation is not offered to you.")
        raise NotFound(_NOT_FOUND)
    if sees_all:
        return conversation
    if action == ConversationAction.READ:
        if _is_assigned_to(conversation, staff) or _is_offered_to(conversation, staff):
            return conversation
        raise NotFound(_NOT_FOUND)
    # WRITE by an agent.
    if _is_assigned_to(conversation, staff) and conversation.status == ConversationStatus.ASSIGNED:
        return conversation
    if _is_offered_to(conversation, staff):
        raise Forbidden("Accept the conversation before acting on it.")
    if _is_assigned_to(conversation, staff):
        raise Conflict(f"This conversation is no longer with you (it is {conversation.status}).")
    raise NotFound(_NOT_FOUND)


async def access_customer(
    session: AsyncSession,
    staff: Staff,
    customer_id: int,
    action: CustomerAction,
    conversation_id: int | None = None,
) -> Customer:
    """Return the customer if `staff` may do `action` to them; raise otherwise.

    Agents reach a customer only through a live conversation with them that is assigned or
    offered to the agent (`conversation_id` names it; without it any such conversation
    counts). Raises `Forbidden` when the role may never do `action` and `NotFound` when
    the customer does not exist or is out of the agent's reach.
    """
    _require_role_for_customer(staff, action)
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(_NO_CUSTOMER)
    if conversation_id is not None:
        conversation = await access_conversation(
            session, staff, conversation_id, ConversationAction.READ
        )
        if conversation.customer_id != customer.id:
            raise NotFound("That conversation is not with this customer.")
    if has_permission(staff.role, Permission.SEE_ALL_CONVERSATIONS):
        return customer
    if await _agent_serves_customer(session, staff, customer.id, conversation_id):
        return customer
    raise NotFound(_NO_CUSTOMER)


def conversations_visible_to(staff: Staff) -> list[ColumnElement[bool]]:
    """SQL conditions limiting a conversation query to what `staff` may read (for lists)."""
    if has_permission(staff.role, Permission.SEE_ALL_CONVERSATIONS):
        return []
    if not has_permission(staff.role, Permission.HANDLE_CONVERSATIONS):
        raise Forbidden(f"Your role ({staff.role.value}) does not work conversations.")
    return [or_(Conversation.assigned_agent_id == staff.id, _offered_condition(staff))]


def _offered_condition(staff: Staff) -> ColumnElement[bool]:
    return and_(
        Conversation.offered_agent_id == staff.id,
        Conversation.status == ConversationStatus.QUEUED,
        or_(Conversation.offer_expires_at.is_(None), Conversation.offer_expires_at > utcnow()),
    )


def _require_role_for(staff: Staff, action: ConversationAction) -> None:
    role = staff.role
    if action == ConversationAction.TAKE_OVER:
        needed = Permission.TAKE_OVER
    elif action == ConversationAction.WATCH:
        needed = Permission.SEE_ALL_CONVERSATIONS
    elif action == ConversationAction.ANSWER_OFFER:
        needed = Permission.HANDLE_CONVERSATIONS
    elif has_permission(role, Permission.SEE_ALL_CONVERSATIONS):
        return
    else:
        needed = Permission.HANDLE_CONVERSATIONS
    if not has_permission(role, needed):
        raise Forbidden(f"Your role ({role.value}) may not {action.value.replace('_', ' ')}.")


def _require_role_for_customer(staff: Staff, action: CustomerAction) -> None:
    role = staff.role
    works_customers = has_permission(role, Permission.HANDLE_CONVERSATIONS) or has_permission(
        role, Permission.SEE_ALL_CONVERSATIONS
    )
    if not works_customers:
        raise Forbidden(f"Your role ({role.value}) does not see customer records.")
    if action == CustomerAction.REVEAL and not has_permission(role, Permission.REVEAL_PII):
        raise Forbidden(f"Your role ({role.value}) may not reveal full numbers.")
    if action == CustomerAction.MERGE and not has_permission(role, Permission.MERGE_CUSTOMERS):
        raise Forbidden(f"Your role ({role.value}) may not merge customers.")


def _is_assigned_to(conversation: Conversation, staff: Staff) -> bool:
    return conversation.assigned_agent_id == staff.id


def _is_offered_to(conversation: Conversation, staff: Staff) -> bool:
    if conversation.offered_agent_id != staff.id:
        return False
    if conversation.status != ConversationStatus.QUEUED:
        return False
    expires = conversation.offer_expires_at
    return expires is None or expires > utcnow()


async def _agent_serves_customer(
    session: AsyncSession, staff: Staff, customer_id: int, conversation_id: int | None
) -> bool:
    """Say whether the agent holds (or is offered) a live conversation with the customer."""
    query = select(Conversation.id).where(
        Conversation.customer_id == customer_id,
        or_(
            and_(
                Conversation.assigned_agent_id == staff.id,
                Conversation.status == ConversationStatus.ASSIGNED,
            ),
            _offered_condition(staff),
        ),
    )
    if conversation_id is not None:
        query = query.where(Conversation.id == conversation_id)
    return (await session.scalar(query.limit(1))) is not None


async def access_merge(
    session: AsyncSession, staff: Staff, customer_id: int, other_customer_id: int
) -> tuple[Customer, Customer]:
    """Return both customers if `staff` may merge them; raise otherwise.

    Supervisors and admins may merge any two records. An agent may merge the customer of a
    conversation they hold only with one of that customer's suggested matches: a merge
    hands the other record's history to whoever contacts the survivor, so an agent must
    not pick an arbitrary record.
    """
    customer = await access_customer(session, staff, customer_id, CustomerAction.MERGE)
    other = await session.get(Customer, other_customer_id)
    if other is None:
        raise NotFound(_NO_CUSTOMER)
    if has_permission(staff.role, Permission.SEE_ALL_CONVERSATIONS):
        return customer, other
    suggested = {m.customer_id for m in await suggest_matches(session, customer.id)}
    if other.id not in suggested:
        raise NotFound("That customer is not among this customer's suggested matches.")
    return customer, other
