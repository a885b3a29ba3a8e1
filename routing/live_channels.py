"""Routing and live channels: an accepted phone call is put through, an unanswered one requeued.

Routing publishes `Assigned` after the commit; this sink turns it into the domain's
`AgentAssignment` (with the customer's address and latest message id) and hands it to the
channels. The channel's work (a Twilio API call) must never hold up or undo the accept, so
failures are logged here and the channel runs anything slow in its own task.

`LiveCallRouting` is the other direction, the hooks the wiring hands a live channel
(`ChannelContext`): what the caller's conversation is doing now, putting a conversation
whose agent did not pick up the phone back in its queue, and a hang-up in the timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import AgentAssignment, ConversationStatus, CustomerAddress, Direction
from hub.storage.database import Database
from hub.storage.models import Conversation, Identity, Message
from routing.assignment import CALL_UNANSWERED, lock_conversation, record, requeue
from routing.conversations import current_conversation_at
from routing.engine import RoutingEngine
from routing.events import Assigned, QueueChanged, RoutingEvent

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


class LiveCallRouting:
    """The routing a live channel (a phone call) needs, without importing routing itself."""

    def __init__(self, engine: RoutingEngine) -> None:
        self.engine = engine

    async def current_state(
        self, address: CustomerAddress
    ) -> tuple[int, ConversationStatus, int | None] | None:
        """(conversation id, status, assigned agent) of the address's open conversation."""
        async with self.engine.database.read() as session:
            current = await current_conversation_at(session, address)
            if current is None:
                return None
            return current.id, ConversationStatus(current.status), current.assigned_agent_id

    async def return_to_queue(self, conversation_id: int, agent_id: int, reason: str) -> bool:
        """Requeue the conversation if `agent_id` still holds it; say whether it was requeued.

        Only the agent the call rang is unassigned: if a supervisor took the conversation
        over or it was closed meanwhile, that later decision stands.
        """
        now = utcnow()
        async with self.engine.database.write() as session:
            conversation = await lock_conversation(session, conversation_id)
            if (
                conversation is None
                or conversation.status != ConversationStatus.ASSIGNED
                or conversation.assigned_agent_id != agent_id
            ):
                return False
            # The same step as an agent going offline: audited as "requeued", `Unassigned`.
            events = requeue(session, conversation, now, reason)
            # And a refusal: the agent who let the phone ring is not rung again at once.
            record(session, conversation_id, CALL_UNANSWERED, now, agent_id, reason=reason)
            events.append(QueueChanged(f"{reason}:{conversation_id}"))
        await self.engine.publish(events)
        self.engine.trigger()
        return True

    async def call_ended(self, address: CustomerAddress, call_status: str) -> None:
        """Note the hang-up in the open conversation's timeline (none open: nothing to note)."""
        async with self.engine.database.write() as session:
            current = await current_conversation_at(session, address)
            if current is None:
                return
            record(
                session,
                current.id,
                "call_ended",
                utcnow(),
                current.assigned_agent_id,
                call_status=call_status,
            )
