"""What agents and supervisors do to a conversation: one function per action.

Each action runs in one transaction that first locks the conversation row, then asks the
caller's `authorise` (the console's `access_conversation`, bound to the action) inside that
same transaction, so the check and the change see the same state. Events are published
only after the commit. Replies are committed first and then delivered through the same
`ChannelGateway` as bot replies; the delivery outcome is stored and pushed as a status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.domain import (
    Author,
    ConversationStatus,
    CustomerAddress,
    DeliveryStatus,
    Direction,
    Skill,
)
from hub.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from hub.staff_auth import Staff
from hub.storage.models import Agent, Conversation, ConversationEvent, Identity, Message
from routing import assignment
from routing.assignment import lock_agent, lock_conversation, record, withdraw_offer
from routing.engine import RoutingEngine
from routing.events import (
    Assigned,
    ConversationClosed,
    MessageAdded,
    OfferMade,
    QueueChanged,
    RoutingEvent,
    Unassigned,
)
from routing.transcripts import to_outbound

Authorise = Callable[[AsyncSession, int], Awaitable[Conversation]]
READ_EVENT = "read"  # the viewer's read marker; agent_console.views counts unread from it

# Said to the customer when a person joins, in the conversation's language.
JOINED_TEXT = {
    "zh": "人工客服 {name} 已接入，请问有什么可以帮您？",
    "en": "{name} from our team has joined the chat.",
}


class Resolution(StrEnum):
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    FOLLOW_UP = "follow_up"
    TRANSFERRED_OUT = "transferred_out"


def person_id(staff: Staff) -> int:
    """The staff member's `agents.id`; the admin token is automation, not a person."""
    if staff.agent_id is None:
        raise Forbidden("The admin token cannot work conversations; log in as a person.")
    return staff.agent_id


async def locked(session: AsyncSession, conversation_id: int, authorise: Authorise) -> Conversation:
    """Lock the conversation row, then check access against that locked state."""
    await lock_conversation(session, conversation_id)
    return await authorise(session, conversation_id)


# -- offers -------------------------------------------------------------------------------------


async def accept_offer(
    engine: RoutingEngine, staff: Staff, conversation_id: int, authorise: Authorise
) -> Conversation:
    """Accept an offer: the conversation is the agent's, and the customer is told."""
    agent_id = person_id(staff)
    now = utcnow()
    async with engine.database.write() as session:
        conversation = await locked(session, conversation_id, authorise)
        events = await assignment.accept(session, conversation, agent_id, now)
        language = conversation.language if conversation.language in JOINED_TEXT else "zh"
        text = JOINED_TEXT[language].format(name=staff.display_name)
        joined = _message(conversation, Author.SYSTEM, text, now, agent_id=None)
        session.add(joined)
        await session.flush()
        outbound = to_outbound(joined, await _address(session, conversation))
    await engine.publish([*events, MessageAdded(conversation_id, joined.id)])
    await engine.deliver([outbound])
    return conversation


async def decline_offer(
    engine: RoutingEngine, staff: Staff, conversation_id: int, authorise: Authorise
) -> None:
    """Give an offer back; it goes to the next agent."""
    agent_id = person_id(staff)
    async with engine.database.write() as session:
        conversation = await locked(session, conversation_id, authorise)
        events = await assignment.decline(session, conversation, agent_id, utcnow())
    await engine.publish(events)
    engine.trigger()


# -- messages -----------------------------------------------------------------------------------


async def send_reply(
    engine: RoutingEngine,
    staff: Staff,
    conversation_id: int,
    text: str,
    client_id: str,
    authorise: Authorise,
) -> Message:
    """Commit the reply (once per client id), deliver it to the customer, record the outcome."""
    agent_id = person_id(staff)
    text = _checked_text(text, engine.max_message_chars)
    async with engine.conversation_locks.hold(conversation_id):
        now = utcnow()
        async with engine.database.write() as session:
            conversation = await locked(session, conversation_id, authorise)
            existing = await _by_client_id(session, conversation, _reply_key(agent_id, client_id))
            if existing is not None:
                return existing
            if conversation.status != ConversationStatus.ASSIGNED:
                raise Conflict("Take the conversation before replying: nobody holds it.")
            message = _message(conversation, Author.AGENT, text, now, agent_id=agent_id)
            message.channel_message_id = _reply_key(agent_id, client_id)
            message.meta = {"client_id": client_id}
            session.add(message)
            if conversation.first_response_at is None:
                conversation.first_response_at = now
            conversation.last_message_at = now
            await session.flush()
            outbound = to_outbound(message, await _address(session, conversation))
        await engine.publish([MessageAdded(conversation_id, message.id)])
        delivered = await engine.deliver([outbound])
    return delivered.get(message.id, message)


async def add_note(
    engine: RoutingEngine,
    staff: Staff,
    conversation_id: int,
    text: str,
    client_id: str,
    authorise: Authorise,
) -> Message:
    """Store an internal note; it is shown to staff only and never delivered."""
    agent_id = person_id(staff)
    text = _checked_text(text, engine.max_message_chars)
    now = utcnow()
    async with engine.database.write() as session:
        conversation = await locked(session, conversation_id, authorise)
        existing = await _by_client_id(session, conversation, _note_key(agent_id, client_id))
        if existing is not None:
            return existing
        note = _message(conversation, Author.AGENT, text, now, agent_id=agent_id)
        note.internal = True
        # Nothing to deliver: a note is complete once committed.
        note.delivery_status = DeliveryStatus.SENT
        note.channel_message_id = _note_key(agent_id, client_id)
        note.meta = {"client_id": client_id}
        session.add(note)
        await session.flush()
        record(session, conversation.id, "note", now, agent_id, message_id=note.id)
    await engine.publish([MessageAdded(conversation_id, note.id)])
    return note


async def agent_typing(
    engine: RoutingEngine, staff: Staff, conversation_id: int, typing: bool, authorise: Authorise
) -> None:
    """Show the customer that the agent is (or stopped) typing."""
    async with engine.database.read() as session:
        conversation = await authorise(session, conversation_id)
        if conversation.status != ConversationStatus.ASSIGNED:
            raise Conflict("Nobody holds this conversation.")
        address = await _address(session, conversation)
    await engine.gateway.typing(address, conversation_id, Author.AGENT.value, typing)


async def mark_read(
    engine: RoutingEngine,
    staff: Staff,
    conversation_id: int,
    message_id: int,
    authorise: Authorise,
) -> None:
    """Move the staff member's read marker forward to `message_id` (clears unread)."""
    agent_id = person_id(staff)
    async with engine.database.write() as session:
        conversation = await authorise(session, conversation_id)
        message = await session.get(Message, message_id)
        if message is None or message.conversation_id != conversation.id:
            raise NotFound("There is no such message in this conversation.")
        marker = await session.scalar(
            select(ConversationEvent).where(
                ConversationEvent.conversation_id == conversation.id,
                ConversationEvent.kind == READ_EVENT,
                ConversationEvent.agent_id == agent_id,
            )
        )
        # One marker row per person and conversation, moved forward, never back.
        if marker is None:
            record(session, conversation.id, READ_EVENT, utcnow(), agent_id, message_id=message_id)
        elif int((marker.data or {}).get("message_id", 0)) < message_id:
            marker.data = {"message_id": message_id}
            marker.at = utcnow()


# -- handing conversations on -------------------------------------------------------------------


async def transfer(
    engine: RoutingEngine,
    staff: Staff,
    conversation_id: int,
    authorise: Authorise,
    *,
    to_agent_id: int | None,
    to_skill: str | None,
    note: str,
) -> None:
    """Requeue to a skill, or offer to one agent, with a note in the timeline."""
    if to_agent_id is None and to_skill is None:
        raise InvalidInput("Say where to transfer: to_agent_id or to_skill.")
    now = utcnow()
    events: list[RoutingEvent] = []
    async with engine.database.write() as session:
        conversation = await locked(session, conversation_id, authorise)
        if conversation.status not in (ConversationStatus.ASSIGNED, ConversationStatus.QUEUED):
            raise Conflict("Only a queued or assigned conversation can be transferred.")
        if to_skill is not None and to_skill not in await known_skills(session):
            raise InvalidInput(f"There is no skill {to_skill!r}.")
        previous = conversation.assigned_agent_id
        if to_agent_id is not None and to_agent_id == previous:
            raise Conflict("The conversation is already with that agent.")
        events += withdraw_offer(session, conversation, now, "transferred")
        if previous is not None:
            events.append(Unassigned(conversation.id, previous, "transferred"))
        conversation.status = ConversationStatus.QUEUED
        conversation.assigned_agent_id = None
        conversation.skill = to_skill or conversation.skill
        conversation.overflowed_at = None  # a new queue stay: overflow counts afresh
        conversation.transfer_count += 1
        record(
            session,
            conversation.id,
            "transferred",
            now,
            previous or staff.agent_id,
            by=staff.agent_id,
            from_agent_id=previous,
            to_agent_id=to_agent_id,
            to_skill=to_skill,
            note=note or None,
        )
        if to_agent_id is not None:
            events.append(await _offer_to(session, conversation, to_agent_id, now, engine))
        events.append(QueueChanged(f"transfer:{conversation.id}"))
    await engine.publish(events)
    engine.trigger()


async def _offer_to(
    session: AsyncSession,
    conversation: Conversation,
    agent_id: int,
    now: datetime,
    engine: RoutingEngine,
) -> OfferMade:
    """Offer a transferred conversation to the named agent if they can take it now."""
    agent = await lock_agent(session, agent_id)
    if agent is None or not agent.active or agent.role not in assignment.HANDLING_ROLES:
        raise NotFound("There is no such agent.")
    made = await assignment.offer(session, conversation.id, agent.id, now, engine.timings)
    if made is None:
        raise Conflict(f"{agent.display_name} is not available or has no free capacity now.")
    return made


async def wrap_up(
    engine: RoutingEngine,
    staff: Staff,
    conversation_id: int,
    authorise: Authorise,
    *,
    resolution: Resolution,
    topic: str,
    note: str | None,
) -> None:
    """Close the conversation with a resolution code and topic."""
    now = utcnow()
    async with engine.database.write() as session:
        conversation = await locked(session, conversation_id, authorise)
        if conversation.status not in (ConversationStatus.ASSIGNED, ConversationStatus.QUEUED):
            raise Conflict("This conversation is not open.")
        held_by = conversation.assigned_agent_id or conversation.offered_agent_id
        events = withdraw_offer(session, conversation, now, "closed")
        conversation.status = ConversationStatus.CLOSED
        conversation.closed_at = now
        conversation.resolution = resolution.value
        conversation.wrap_up_code = resolution.value
        conversation.topic = topic
        record(
            session,
            conversation.id,
            "wrap_up",
            now,
            staff.agent_id,
            resolution=resolution.value,
            topic=topic,
            note=note or None,
        )
        events += [
            ConversationClosed(conversation.id, held_by, "wrap_up"),
            QueueChanged(f"wrap_up:{conversation.id}"),
        ]
    await engine.publish(events)
    engine.trigger()  # capacity freed


async def take_over(
    engine: RoutingEngine, staff: Staff, conversation_id: int, authorise: Authorise
) -> Conversation:
    """Make the supervisor the conversation's agent; whoever held or was offered it lets go."""
    agent_id = person_id(staff)
    now = utcnow()
    async with engine.database.write() as session:
        conversation = await locked(session, conversation_id, authorise)
        if conversation.status not in (ConversationStatus.ASSIGNED, ConversationStatus.QUEUED):
            raise Conflict("Only a queued or assigned conversation can be taken over.")
        previous = conversation.assigned_agent_id
        if previous == agent_id:
            return conversation
        events = withdraw_offer(session, conversation, now, "taken_over")
        if previous is not None:
            events.append(Unassigned(conversation.id, previous, "taken_over"))
        conversation.status = ConversationStatus.ASSIGNED
        conversation.assigned_agent_id = agent_id
        if conversation.accepted_at is None:
            conversation.accepted_at = now
        record(session, conversation.id, "taken_over", now, agent_id, from_agent_id=previous)
        events += [
            Assigned(conversation.id, agent_id, "taken_over"),
            QueueChanged(f"take_over:{conversation.id}"),
        ]
    await engine.publish(events)
    engine.trigger()  # the previous agent has room again
    return conversation


async def known_skills(session: AsyncSession) -> set[str]:
    """The default skills plus every skill some staff member has (skills are configurable)."""
    skills = {s.value for s in Skill}
    for agent_skills in await session.scalars(select(Agent.skills)):
        skills.update(str(s) for s in agent_skills or ())
    return skills


# -- helpers ------------------------------------------------------------------------------------


def _checked_text(text: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise InvalidInput("The message is empty; write some text.")
    if len(text) > limit:
        raise PayloadTooLarge(
            f"The message has {len(text)} characters; the limit is {limit}. "
            "Please send it in shorter parts."
        )
    return text


def _reply_key(agent_id: int, client_id: str) -> str:
    # Scoped per person, so two agents' client ids can never collide.
    return f"agent:{agent_id}/{client_id}"


def _note_key(agent_id: int, client_id: str) -> str:
    return f"note:{agent_id}/{client_id}"


async def _by_client_id(
    session: AsyncSession, conversation: Conversation, key: str
) -> Message | None:
    result: Message | None = await session.scalar(
        select(Message).where(
            Message.channel == conversation.channel, Message.channel_message_id == key
        )
    )
    if result is not None and result.conversation_id != conversation.id:
        raise Conflict("That client_id was already used for another conversation.")
    return result


def _message(
    conversation: Conversation, author: Author, text: str, now: datetime, *, agent_id: int | None
) -> Message:
    return Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction=Direction.OUTBOUND,
        author=author,
        agent_id=agent_id,
        text=text,
        sources=[],
        media_urls=[],
        meta={},
        internal=False,
        delivery_status=DeliveryStatus.PENDING,
        created_at=now,
    )


async def _address(session: AsyncSession, conversation: Conversation) -> CustomerAddress:
    identity = await session.get(Identity, conversation.identity_id)
    if identity is None:
        raise NotFound("The conversation has no customer address.")
    return CustomerAddress(identity.channel, identity.address)
