"""Routing events → Socket.IO: what each agent and watching supervisor is shown, and where.

Rooms, so that the same emits work across hub processes once a message-queue manager is
configured: `agent:<id>` holds every console connection of one staff member, and
`watch:<conversation id>:<role>` the supervisors and admins watching a conversation. Texts
are masked for the role of whoever receives them (`agent_console.masking.mask_for`), which
is why watch rooms are split by role. Internal notes go to staff rooms only: the customer's
`/chat` room is never addressed from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import socketio
from sqlalchemy.ext.asyncio import AsyncSession

from agent_console.masking import mask_address
from agent_console.views import conversation_summary, iso, message_json
from hub.permissions import Permission, Role, has_permission
from hub.staff_auth import SERVICE_STAFF_ID, Staff
from hub.storage.database import Database
from hub.storage.models import Agent, Conversation, Identity, Message
from routing.events import (
    Assigned,
    ConversationClosed,
    CustomerTyping,
    MessageAdded,
    MessageStatusChanged,
    OfferMade,
    OfferWithdrawn,
    RoutingEvent,
    SlaBreached,
    Unassigned,
)

log = logging.getLogger(__name__)

AGENT_NAMESPACE = "/agent"
SUPERVISOR_NAMESPACE = "/supervisor"
WALLBOARD_ROOM = "wallboard"
WATCH_ROLES = tuple(r for r in Role if has_permission(r, Permission.SEE_ALL_CONVERSATIONS))
# Events that change nothing the wallboard shows.
CHATTER = (MessageAdded, MessageStatusChanged, CustomerTyping)


def agent_room(agent_id: int) -> str:
    return f"agent:{agent_id}"


def watch_room(conversation_id: int, role: Role) -> str:
    return f"watch:{conversation_id}:{role.value}"


def watch_rooms(conversation_id: int) -> list[str]:
    return [watch_room(conversation_id, role) for role in WATCH_ROLES]


def role_viewer(role: Role) -> Staff:
    """Someone of `role`, for rendering what a watch room (split by role) is shown."""
    return Staff(
        id=SERVICE_STAFF_ID,
        username=f"{role.value}-viewer",
        display_name="",
        role=role,
        skills=(),
        languages=(),
        max_concurrent=0,
        locale="en",
    )


async def offer_json(
    session: AsyncSession, conversation: Conversation, staff: Staff
) -> dict[str, Any]:
    """An `Offer` of the contract: the summary, the bot's handoff context, the deadline."""
    return {
        "conversation": await conversation_summary(session, conversation, staff),
        "handoff": conversation.handoff_context,
        "expires_at": iso(conversation.offer_expires_at),
    }


class ConsolePush:
    """The console's `routing.events.EventSink`: renders each event for its recipients."""

    def __init__(
        self, sio: socketio.AsyncServer, database: Database, changed: Callable[[], None]
    ) -> None:
        self.sio = sio
        self.database = database
        self.changed = changed  # the wallboard's "something moved" signal

    async def publish(self, events: Sequence[RoutingEvent]) -> None:
        if any(not isinstance(e, CHATTER) for e in events):
            self.changed()  # queues or agents moved: the wallboard follows
        if not self._console_connected():
            # Every bot turn stores messages; with no console open here nobody sees them,
            # and only the supervisors' SLA alarm needs no console (it goes to the wallboard).
            events = [e for e in events if isinstance(e, SlaBreached)]
            if not events:
                return
        async with self.database.read() as session:
            for event in events:
                try:
                    await self._push(session, event)
                except Exception:
                    log.exception("could not push %s to the console", event)

    async def screen_pop(self, conversation_id: int, agent_id: int, channel: str) -> None:
        """Open the conversation on the agent's console as the customer is put through."""
        async with self.database.read() as session:
            conversation = await session.get(Conversation, conversation_id)
            staff = await _staff(session, agent_id)
            if conversation is None or staff is None:
                return
            identity = await session.get(Identity, conversation.identity_id)
            payload = {
                "conversation_id": conversation_id,
                "channel": channel,
                # Masked like every number in the console; revealing it is a separate,
                # audited action (customer 360).
                "caller": mask_address(identity.channel, identity.address) if identity else None,
                "conversation": await conversation_summary(session, conversation, staff),
                "handoff": conversation.handoff_context,
            }
        await self._to_agent(agent_id, "screen_pop", payload)

    async def _push(self, session: AsyncSession, event: RoutingEvent) -> None:
        if isinstance(event, OfferMade):
            await self._offer(session, event)
        elif isinstance(event, OfferWithdrawn):
            await self._to_agent(
                event.agent_id,
                "offer_withdrawn",
                {"conversation_id": event.conversation_id, "reason": event.reason},
            )
        elif isinstance(event, Assigned):
            await self._assigned(session, event)
        elif isinstance(event, Unassigned):
            await self._to_agent(
                event.agent_id,
                "unassigned",
                {"conversation_id": event.conversation_id, "reason": event.reason},
            )
        elif isinstance(event, MessageAdded):
            await self._message(session, event)
        elif isinstance(event, MessageStatusChanged):
            await self._status(session, event)
        elif isinstance(event, CustomerTyping):
            payload = {
                "conversation_id": event.conversation_id,
                "author": "customer",
                "typing": event.typing,
            }
            await self._to_holders(event.conversation_id, event.agent_id, "typing", payload)
        elif isinstance(event, ConversationClosed):
            payload = {"conversation_id": event.conversation_id, "reason": event.reason}
            await self._to_holders(
                event.conversation_id, event.agent_id, "conversation_closed", payload
            )
        elif isinstance(event, SlaBreached):
            await self.sio.emit(
                "sla_breach",
                {
                    "conversation_id": event.conversation_id,
                    "skill": event.skill,
                    "waiting_seconds": event.waiting_seconds,
                },
                to=WALLBOARD_ROOM,
                namespace=SUPERVISOR_NAMESPACE,
            )

    async def _offer(self, session: AsyncSession, event: OfferMade) -> None:
        conversation = await session.get(Conversation, event.conversation_id)
        staff = await _staff(session, event.agent_id)
        if conversation is None or staff is None:
            return
        payload = await offer_json(session, conversation, staff)
        payload["expires_at"] = event.expires_at.isoformat()
        await self._to_agent(staff.id, "offer", payload)

    async def _assigned(self, session: AsyncSession, event: Assigned) -> None:
        conversation = await session.get(Conversation, event.conversation_id)
        staff = await _staff(session, event.agent_id)
        if conversation is None or staff is None:
            return
        summary = await conversation_summary(session, conversation, staff)
        await self._to_agent(staff.id, "assigned", {"conversation": summary})

    async def _message(self, session: AsyncSession, event: MessageAdded) -> None:
        message = await session.get(Message, event.message_id)
        conversation = await session.get(Conversation, event.conversation_id)
        if message is None or conversation is None:
            return
        for agent_id in _people_on(conversation):
            staff = await _staff(session, agent_id)
            if staff is not None:
                await self._to_agent(agent_id, "message", message_json(message, staff))
        for role in WATCH_ROLES:
            await self.sio.emit(
                "message",
                message_json(message, role_viewer(role)),
                to=watch_room(conversation.id, role),
                namespace=AGENT_NAMESPACE,
            )

    async def _status(self, session: AsyncSession, event: MessageStatusChanged) -> None:
        conversation = await session.get(Conversation, event.conversation_id)
        payload = {
            "id": event.message_id,
            "conversation_id": event.conversation_id,
            "delivery_status": event.delivery_status,
            "delivery_error": event.delivery_error,
        }
        rooms = watch_rooms(event.conversation_id)
        if conversation is not None:
            rooms += [agent_room(a) for a in _people_on(conversation)]
        await self.sio.emit("message_status", payload, to=rooms, namespace=AGENT_NAMESPACE)

    async def _to_holders(
        self, conversation_id: int, agent_id: int | None, event: str, payload: dict[str, Any]
    ) -> None:
        rooms = watch_rooms(conversation_id)
        if agent_id is not None:
            rooms.append(agent_room(agent_id))
        await self.sio.emit(event, payload, to=rooms, namespace=AGENT_NAMESPACE)

    def _console_connected(self) -> bool:
        """Say whether any agent or supervisor has this process's console open.

        Each hub process emits to the sockets it holds (DESIGN.md), so its own sockets are
        the ones that count.
        """
        connected = self.sio.manager.rooms.get(AGENT_NAMESPACE, {}).get(None)
        return bool(connected)

    async def _to_agent(self, agent_id: int, event: str, payload: dict[str, Any]) -> None:
        await self.sio.emit(event, payload, to=agent_room(agent_id), namespace=AGENT_NAMESPACE)


def _people_on(conversation: Conversation) -> list[int]:
    """The agent holding the conversation and the one it is offered to (read only)."""
    people = [conversation.assigned_agent_id, conversation.offered_agent_id]
    return [p for p in dict.fromkeys(people) if p is not None]


async def _staff(session: AsyncSession, agent_id: int) -> Staff | None:
    agent = await session.get(Agent, agent_id)
    return Staff.of(agent) if agent is not None else None
