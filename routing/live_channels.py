"""Routing events a live channel must act on: an accepted phone call is put through to the agent.

Routing publishes `Assigned` after the commit; this sink turns it into the domain's
`AgentAssignment` (with the customer's address and latest message id) and hands it to the
channels. The channel's work (a Twilio API call) must never hold up or undo the accept, so
failures are logged here and the channel runs anything slow in its own task.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain import AgentAssignment, CustomerAddress, Direction
from hub.storage.database import Database
from hub.storage.models import Conversation, Identity, Message
from routing.events import Assigned, RoutingEvent

log = logging.getLogger(__name__)

NotifyAssignment = Callable[[AgentAssignment], Awaitable[None]]


class AssignmentsToChannels:
    """An `EventSink` that tells the customer's channel when an agent takes a conversation."""

    def __init__(self, database: Database, notify: NotifyAssignment) -> None:
        self.database = database
        self.notify = notify

    async def publish(self, events: Sequence[RoutingEvent]) -> None:
        assigned = [e for e in events if isinstance(e, Assigned)]
        if not assigned:
            return
        async with self.database.read() as session:
            found = [await _assignment(session, e) for e in assigned]
        for assignment in found:
            if assignment is None:
                continue
            try:
                await self.notify(assignment)
            except Exception:
                log.exception("channel could not act on %s", assignment)


async def _assignment(session: AsyncSession, event: Assigned) -> AgentAssignment | None:
    conversation = await session.get(Conversation, event.conversation_id)
    if conversation is None:
        return None
    identity = await session.get(Identity, conversation.identity_id)
    if identity is None:
        return None
    last_inbound: str | None = await session.scalar(
        select(Message.channel_message_id)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == Direction.INBOUND,
            Message.channel == identity.channel,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    return AgentAssignment(
        conversation_id=conversation.id,
        agent_id=event.agent_id,
        address=CustomerAddress(identity.channel, identity.address),
        last_channel_message_id=last_inbound,
    )
