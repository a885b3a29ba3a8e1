"""Human queues: a handed-off conversation waits here, by skill and priority, for an agent."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import ConversationStatus, HandoffContext
from hub.storage.models import Conversation, Customer

# Priority points; higher is served first. Why: a high-net-worth customer or one flagged for
# risk (fraud, vulnerability) must not wait behind routine questions.
SEGMENT_PRIORITY = {"private": 30, "hnw": 30, "high_net_worth": 30, "affluent": 10}
RISK_PRIORITY = 20
COMPLAINT_PRIORITY = 10
# A customer back within a week is likely still stuck on the same problem.
REPEAT_CONTACT_PRIORITY = 15
REPEAT_CONTACT_WINDOW = timedelta(days=7)


def priority_for(customer: Customer, handoff: HandoffContext) -> int:
    """Score how urgently this customer should reach a human."""
    score = SEGMENT_PRIORITY.get((customer.segment or "").lower(), 0)
    if customer.risk_tags:
        score += RISK_PRIORITY
    if handoff.reason == "complaint":
        score += COMPLAINT_PRIORITY
    return score


async def enqueue(
    session: AsyncSession, conversation: Conversation, customer: Customer, handoff: HandoffContext
) -> None:
    """Put the conversation in its skill's queue with the bot's handoff context."""
    conversation.status = ConversationStatus.QUEUED
    conversation.skill = handoff.skill
    conversation.priority = priority_for(customer, handoff)
    if await is_repeat_contact(session, conversation):
        conversation.priority += REPEAT_CONTACT_PRIORITY
    conversation.handoff_at = utcnow()
    conversation.handoff_context = handoff.to_json()
    if handoff.intent and not conversation.topic:
        conversation.topic = handoff.intent
    await session.flush()


async def is_repeat_contact(session: AsyncSession, conversation: Conversation) -> bool:
    """Say whether the customer had another contact in the 7 days before this one opened."""
    earlier = await session.scalar(
        select(Conversation.id)
        .where(
            Conversation.customer_id == conversation.customer_id,
            Conversation.id != conversation.id,
            Conversation.opened_at >= conversation.opened_at - REPEAT_CONTACT_WINDOW,
            Conversation.opened_at <= conversation.opened_at,
        )
        .limit(1)
    )
    return earlier is not None


async def queue_position(session: AsyncSession, conversation: Conversation) -> int:
    """1-based place in the skill's queue (ahead: higher priority, or equal and earlier)."""
    if conversation.status != ConversationStatus.QUEUED or conversation.handoff_at is None:
        return 0
    ahead = await session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.status == ConversationStatus.QUEUED,
            Conversation.skill == conversation.skill,
            Conversation.id != conversation.id,
            or_(
                Conversation.priority > conversation.priority,
                and_(
                    Conversation.priority == conversation.priority,
                    Conversation.handoff_at <= conversation.handoff_at,
                ),
            ),
        )
    )
    return int(ahead or 0) + 1
