"""Socket.IO namespaces `/agent` and `/supervisor` (docs/console-contract.md): thin handlers.

Each `on_<event>` parses its input into a typed model, authorises through
`agent_console.access` (bound to the action and run inside the action's own transaction),
calls one action from `routing` and acks `{"ok": true, ...}` or `{"error": {code, message}}`.
The session token given at connect is checked again on every event, so a logout, an
expired session or a disabled account cuts the console off at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import socketio
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_console import socket_inputs as inputs
from agent_console.access import ConversationAction, access_conversation
from agent_console.push import (
    AGENT_NAMESPACE,
    SUPERVISOR_NAMESPACE,
    WALLBOARD_ROOM,
    ConsolePush,
    agent_room,
    offer_json,
    watch_room,
)
from agent_console.views import conversation_detail, conversation_summaries, message_json
from agent_console.wallboard import WallboardFeed
from hub.clock import utcnow
from hub.domain import ConversationStatus
from hub.errors import Forbidden, HubError, InvalidInput, Unauthenticated
from hub.http import parse_model
from hub.permissions import Permission
from hub.staff_auth import Staff, authenticate_bearer
from hub.storage.database import Database
from hub.storage.models import Conversation
from routing import agent_actions, presence
from routing.agent_actions import Authorise
from routing.engine import RoutingEngine

log = logging.getLogger(__name__)

# A connection whose session ended gets its error ack before the server hangs up.
CLOSE_AFTER_SECONDS = 1.0
InputT = TypeVar("InputT", bound=BaseModel)
Action = Callable[[Staff, InputT], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ConsoleDeps:
    """What the console's namespaces work with."""

    database: Database
    engine: RoutingEngine
    admin_token: str


def authorise(staff: Staff, action: ConversationAction) -> Authorise:
    """`access_conversation` for this person and action, to run inside an action's transaction."""

    async def check(session: AsyncSession, conversation_id: int) -> Conversation:
        return await access_conversation(session, staff, conversation_id, action)

    return check


def error_ack(error: HubError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message}}


class StaffNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Token authentication at connect and on every event; errors become `{"error": ...}` acks."""

    def __init__(self, namespace: str, deps: ConsoleDeps) -> None:
        super().__init__(namespace)
        self.deps = deps
        self.tokens: dict[str, str] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def authenticate(self, token: Any) -> Staff:
        if not isinstance(token, str) or not token:
            raise Unauthenticated('Connect with auth = {"token": <session token>}.')
        async with self.deps.database.read() as session:
            return await authenticate_bearer(session, token, self.deps.admin_token)

    async def admit(self, sid: str, auth: Any) -> Staff:
        """Authenticate a connection or refuse it with `{code, message}` as the error data."""
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            staff = await self.authenticate(token)
            self.check_admission(staff)
        except HubError as error:
            raise socketio.exceptions.ConnectionRefusedError(
                error.message, {"code": error.code, "message": error.message}
            ) from error
        self.tokens[sid] = token  # type: ignore[assignment]
        return staff

    def check_admission(self, staff: Staff) -> None:
        """Raise `Forbidden` for a role this namespace does not serve."""

    async def cut_off(self, sid: str) -> None:
        """Stop pushing to a connection whose session ended; close it once the ack is out."""
        self.tokens.pop(sid, None)
        for room in self.rooms(sid):
            if room != sid:
                await self.leave_room(sid, room)
        closing = asyncio.get_running_loop().create_task(self._close_later(sid))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _close_later(self, sid: str) -> None:
        await asyncio.sleep(CLOSE_AFTER_SECONDS)
        await self.disconnect(sid)

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        self.tokens.pop(sid, None)

    async def handle(
        self, sid: str, data: Any, model: type[InputT], action: Action[InputT]
    ) -> dict[str, Any]:
        """Authenticate, parse, act; answer with the ack the contract describes."""
        try:
            staff = await self.authenticate(self.tokens.get(sid))
        except Unauthenticated as error:
            await self.cut_off(sid)
            return error_ack(error)
        try:
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise InvalidInput("Send a JSON object.")
            result = await action(staff, parse_model(model, data))
        except HubError as error:
            return error_ack(error)
        except Exception:
            log.exception("console event failed on %s", self.namespace)
            return {"error": {"code": "internal_error", "message": "Something went wrong."}}
        return {"ok": True, **result}

    async def take_over(self, staff: Staff, body: inputs.ConversationInput) -> dict[str, Any]:
        conversation = await agent_actions.take_over(
            self.deps.engine,
            staff,
            body.conversation_id,
            authorise(staff, ConversationAction.TAKE_OVER),
        )
        return {"conversation": await self.detail(conversation, staff)}

    async def detail(self, conversation: Conversation, staff: Staff) -> dict[str, Any]:
        async with self.deps.database.read() as session:
            fresh = await session.get(Conversation, conversation.id)
            assert fresh is not None
            return await conversation_detail(session, fresh, staff)

    async def on_take_over(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.ConversationInput, self.take_over)


class AgentNamespace(StaffNamespace):
    """`/agent`: presence, offers, replies, notes, transfers, wrap-up, watching."""

    def __init__(self, deps: ConsoleDeps) -> None:
        super().__init__(AGENT_NAMESPACE, deps)

    def check_admission(self, staff: Staff) -> None:
        if staff.agent_id is None:
            raise Forbidden("The console is for people: log in with a staff account.")
        if not (
            staff.can(Permission.HANDLE_CONVERSATIONS)
            or staff.can(Permission.SEE_ALL_CONVERSATIONS)
        ):
            raise Forbidden(f"Your role ({staff.role.value}) does not work conversations.")

    async def on_connect(self, sid: str, environ: Any, auth: Any = None) -> None:
        staff = await self.admit(sid, auth)
        await self.enter_room(sid, agent_room(staff.id))
        now = utcnow()
        async with self.deps.database.write() as session:
            current = await presence.heartbeat(session, staff.id, now)
        async with self.deps.database.read() as session:
            hello = await _hello(session, staff, current)
        await self.emit("hello", hello, to=sid)

    async def on_presence(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.PresenceInput, self._presence)

    async def _presence(self, staff: Staff, body: inputs.PresenceInput) -> dict[str, Any]:
        status = presence.Presence(body.status)
        async with self.deps.database.write() as session:
            events = await presence.set_presence(
                session, agent_actions.person_id(staff), status, utcnow()
            )
        await self.deps.engine.publish(events)
        self.deps.engine.trigger()
        return {"presence": status.value}

    async def on_heartbeat(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.NoInput, self._heartbeat)

    async def _heartbeat(self, staff: Staff, _: inputs.NoInput) -> dict[str, Any]:
        async with self.deps.database.write() as session:
            current = await presence.heartbeat(session, agent_actions.person_id(staff), utcnow())
        return {"presence": current}

    async def on_accept(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.ConversationInput, self._accept)

    async def _accept(self, staff: Staff, body: inputs.ConversationInput) -> dict[str, Any]:
        conversation = await agent_actions.accept_offer(
            self.deps.engine,
            staff,
            body.conversation_id,
            authorise(staff, ConversationAction.ANSWER_OFFER),
        )
        return {"conversation": await self.detail(conversation, staff)}

    async def on_decline(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.ConversationInput, self._decline)

    async def _decline(self, staff: Staff, body: inputs.ConversationInput) -> dict[str, Any]:
        await agent_actions.decline_offer(
            self.deps.engine,
            staff,
            body.conversation_id,
            authorise(staff, ConversationAction.ANSWER_OFFER),
        )
        return {}

    async def on_send(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.SendInput, self._send)

    async def _send(self, staff: Staff, body: inputs.SendInput) -> dict[str, Any]:
        message = await agent_actions.send_reply(
            self.deps.engine,
            staff,
            body.conversation_id,
            body.text,
            body.client_id,
            authorise(staff, ConversationAction.WRITE),
        )
        return {"message": message_json(message, staff)}

    async def on_note(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.SendInput, self._note)

    async def _note(self, staff: Staff, body: inputs.SendInput) -> dict[str, Any]:
        note = await agent_actions.add_note(
            self.deps.engine,
            staff,
            body.conversation_id,
            body.text,
            body.client_id,
            authorise(staff, ConversationAction.WRITE),
        )
        return {"message": message_json(note, staff)}

    async def on_typing(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.TypingInput, self._typing)

    async def _typing(self, staff: Staff, body: inputs.TypingInput) -> dict[str, Any]:
        await agent_actions.agent_typing(
            self.deps.engine,
            staff,
            body.conversation_id,
            body.typing,
            authorise(staff, ConversationAction.WRITE),
        )
        return {}

    async def on_read(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.ReadInput, self._read)

    async def _read(self, staff: Staff, body: inputs.ReadInput) -> dict[str, Any]:
        await agent_actions.mark_read(
            self.deps.engine,
            staff,
            body.conversation_id,
            body.message_id,
            authorise(staff, ConversationAction.WRITE),
        )
        return {}

    async def on_transfer(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.TransferInput, self._transfer)

    async def _transfer(self, staff: Staff, body: inputs.TransferInput) -> dict[str, Any]:
        await agent_actions.transfer(
            self.deps.engine,
            staff,
            body.conversation_id,
            authorise(staff, ConversationAction.WRITE),
            to_agent_id=body.to_agent_id,
            to_skill=body.to_skill,
            note=body.note,
        )
        return {}

    async def on_wrap_up(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self.handle(sid, data, inputs.WrapUpInput, self._wrap_up)

    async def _wrap_up(self, staff: Staff, body: inputs.WrapUpInput) -> dict[str, Any]:
        await agent_actions.wrap_up(
            self.deps.engine,
            staff,
            body.conversation_id,
            authorise(staff, ConversationAction.WRITE),
            resolution=body.resolution,
            topic=body.topic,
            note=body.note,
        )
        return {}

    async def on_join(self, sid: str, data: Any = None) -> dict[str, Any]:
        async def join(staff: Staff, body: inputs.ConversationInput) -> dict[str, Any]:
            async with self.deps.database.read() as session:
                conversation = await access_conversation(
                    session, staff, body.conversation_id, ConversationAction.WATCH
                )
                detail = await conversation_detail(session, conversation, staff)
            await self.enter_room(sid, watch_room(body.conversation_id, staff.role))
            return {"conversation": detail}

        return await self.handle(sid, data, inputs.ConversationInput, join)

    async def on_leave(self, sid: str, data: Any = None) -> dict[str, Any]:
        async def leave(staff: Staff, body: inputs.ConversationInput) -> dict[str, Any]:
            await self.leave_room(sid, watch_room(body.conversation_id, staff.role))
            return {}

        return await self.handle(sid, data, inputs.ConversationInput, leave)


class SupervisorNamespace(StaffNamespace):
    """`/supervisor`: the live wallboard, SLA alerts and take-over."""

    def __init__(self, deps: ConsoleDeps, feed: WallboardFeed) -> None:
        super().__init__(SUPERVISOR_NAMESPACE, deps)
        self.feed = feed

    def check_admission(self, staff: Staff) -> None:
        if not staff.can(Permission.WALLBOARD):
            raise Forbidden(f"Your role ({staff.role.value}) does not see the wallboard.")

    async def on_connect(self, sid: str, environ: Any, auth: Any = None) -> None:
        await self.admit(sid, auth)
        await self.enter_room(sid, WALLBOARD_ROOM)
        self.feed.watchers.add(sid)
        await self.emit("wallboard", await self.feed.snapshot(), to=sid)

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        self.tokens.pop(sid, None)
        self.feed.watchers.discard(sid)


async def _hello(session: AsyncSession, staff: Staff, current: str) -> dict[str, Any]:
    """What a console sees on (re)connect: who they are, what they hold, what is offered."""
    now = utcnow()
    held = list(
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.status == ConversationStatus.ASSIGNED,
                Conversation.assigned_agent_id == staff.id,
            )
            .order_by(Conversation.id)
        )
    )
    offered = list(
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.status == ConversationStatus.QUEUED,
                Conversation.offered_agent_id == staff.id,
                Conversation.offer_expires_at > now,
            )
            .order_by(Conversation.id)
        )
    )
    return {
        "staff": staff.to_json(),
        "presence": current,
        "assigned": await conversation_summaries(session, held, staff),
        "offers": [await offer_json(session, c, staff) for c in offered],
    }


@dataclass(frozen=True)
class ConsoleSockets:
    """The console's Socket.IO side, registered on the hub's server."""

    agent: AgentNamespace
    supervisor: SupervisorNamespace
    push: ConsolePush
    feed: WallboardFeed

    @classmethod
    def register(
        cls, sio: socketio.AsyncServer, deps: ConsoleDeps, wallboard_seconds: float
    ) -> ConsoleSockets:
        """Create and register `/agent` and `/supervisor`; routing publishes into `push`."""
        feed = WallboardFeed(sio, deps.database, wallboard_seconds)
        push = ConsolePush(sio, deps.database, feed.changed)
        agent = AgentNamespace(deps)
        supervisor = SupervisorNamespace(deps, feed)
        sio.register_namespace(agent)
        sio.register_namespace(supervisor)
        deps.engine.sink = push
        return cls(agent, supervisor, push, feed)
