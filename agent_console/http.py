"""The console's HTTP API (docs/console-contract.md, "HTTP"): thin handlers.

Each handler authenticates the bearer token, parses its input into a typed model, asks
`agent_console.access` about the resource, calls one action and renders the contract's
JSON. Login is the only public route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from agent_console.access import (
    ConversationAction,
    CustomerAction,
    access_conversation,
    access_customer,
    access_merge,
    conversations_visible_to,
)
from agent_console.customer360 import reveal_number, view_customer_360
from agent_console.masking import mask_for
from agent_console.views import conversation_detail, conversation_summaries, iso
from hub.crm.directory import DatabaseDirectory, HttpCrmDirectory, directory_for
from hub.domain import Author, ConversationStatus
from hub.errors import InvalidInput, NotFound
from hub.http import bearer_token, query_int, read_model
from hub.language import SUPPORTED_LANGUAGES
from hub.permissions import Permission
from hub.settings import Settings
from hub.staff_auth import (
    InvalidCredentials,
    IssuedSession,
    Staff,
    log_in,
    log_out,
    require_permission,
    staff_from_request,
)
from hub.storage.database import Database
from hub.storage.models import CannedReply, Conversation, CustomerMerge, Message
from knowledge.http import hit_json
from knowledge.service import KnowledgeBase
from routing.merges import merge_customers, undo_merge
from routing.supervision import agent_board, handling_staff

LIST_LIMIT = 200
SUGGESTIONS = 5
Reason = Annotated[str, Field(min_length=5, max_length=1000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginBody(_Body):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=200)]


class RevealBody(_Body):
    field: Literal["phone", "national_id", "account_number"]
    holding_id: str | int | None = None
    reason: Reason


class MergeBody(_Body):
    other_customer_id: int
    reason: Reason


class UndoBody(_Body):
    reason: Reason


class ConsoleApiRoutes:
    """Auth, conversations (read side), customer 360, reveal, merges, suggestions, replies,
    and the colleagues one may transfer to."""

    def __init__(self, database: Database, settings: Settings, kb: KnowledgeBase) -> None:
        self.database = database
        self.settings = settings
        self.kb = kb
        self.directory: DatabaseDirectory | HttpCrmDirectory = directory_for(
            database,
            settings.crm_url,
            token=settings.crm_token,
            timeout_seconds=settings.crm_timeout_seconds,
            cache_seconds=settings.crm_cache_seconds,
        )

    def register(self, app: web.Application) -> None:
        add = app.router
        add.add_post("/api/auth/login", self.login)
        add.add_post("/api/auth/logout", self.logout)
        add.add_get("/api/auth/me", self.me)
        add.add_get("/api/conversations", self.conversations)
        add.add_get("/api/conversations/{id}", self.conversation)
        add.add_get("/api/customers/{id}/context", self.customer_context)
        add.add_post("/api/customers/{id}/reveal", self.reveal)
        add.add_post("/api/customers/{id}/merge", self.merge)
        add.add_post("/api/customer-merges/{id}/undo", self.undo_merge)
        add.add_get("/api/kb/suggest", self.kb_suggest)
        add.add_get("/api/canned-replies", self.canned_replies)
        add.add_get("/api/agents", self.agents)
        app.cleanup_ctx.append(self._directory_ctx())

    def _directory_ctx(self) -> Callable[[web.Application], AsyncIterator[None]]:
        async def ctx(_: web.Application) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await self.directory.close()

        return ctx

    async def _staff(self, request: web.Request) -> Staff:
        return await staff_from_request(request, self.database, self.settings.admin_token)

    # -- auth -----------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        body = await read_model(request, LoginBody)
        issued: IssuedSession | None = None
        failure: InvalidCredentials | None = None
        async with self.database.write() as session:
            try:
                issued = await log_in(
                    session,
                    body.username,
                    body.password,
                    ip=request.remote,
                    user_agent=request.headers.get("User-Agent"),
                    lifetime=timedelta(hours=self.settings.session_hours),
                )
            except InvalidCredentials as error:
                failure = error  # commit the recorded attempt, then answer 401
        if failure is not None or issued is None:
            raise failure or InvalidCredentials("The username or password is not right.")
        return web.json_response(
            {
                "token": issued.token,
                "expires_at": iso(issued.expires_at),
                "staff": issued.staff.to_json(),
            }
        )

    async def logout(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        token = bearer_token(request)
        if token is not None and not staff.is_service:
            async with self.database.write() as session:
                await log_out(session, token)
        return web.json_response({"ok": True})

    async def me(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        return web.json_response(staff.to_json())

    # -- conversations ----------------------------------------------------------------------

    async def conversations(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        conditions = conversations_visible_to(staff)
        status = request.query.get("status") or None
        if status is not None and status not in {s.value for s in ConversationStatus}:
            raise InvalidInput("status must be one of bot, queued, assigned, closed.")
        limit = query_int(request, "limit", 100, 1, LIST_LIMIT)
        query = select(Conversation).where(*conditions)
        if status is not None:
            query = query.where(Conversation.status == status)
        if request.query.get("mine") in {"1", "true"}:
            query = query.where(Conversation.assigned_agent_id == staff.agent_id)
        if status == ConversationStatus.QUEUED:
            query = query.order_by(Conversation.priority.desc(), Conversation.handoff_at)
        else:
            query = query.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        async with self.database.read(scan=True) as session:
            rows = list(await session.scalars(query.limit(limit)))
            body = await conversation_summaries(session, rows, staff)
        return web.json_response({"conversations": body})

    async def conversation(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        conversation_id = _path_id(request)
        async with self.database.read() as session:
            conversation = await access_conversation(
                session, staff, conversation_id, ConversationAction.READ
            )
            body = await conversation_detail(session, conversation, staff)
        return web.json_response(body)

    # -- customers --------------------------------------------------------------------------

    async def customer_context(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        conversation_id = _query_id(request, "conversation_id")
        body = await view_customer_360(
            self.database,
            self.directory,
            staff,
            _path_id(request),
            conversation_id=conversation_id,
            reason=request.query.get("reason"),
        )
        return web.json_response(body)

    async def reveal(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        customer_id = _path_id(request)
        body = await read_model(request, RevealBody)
        value = await reveal_number(
            self.database,
            self.directory,
            staff,
            customer_id,
            field=body.field,
            holding_id=str(body.holding_id) if body.holding_id is not None else None,
            reason=body.reason,
        )
        return web.json_response({"value": value})

    async def merge(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        customer_id = _path_id(request)
        body = await read_model(request, MergeBody)
        async with self.database.write() as session:
            customer, other = await access_merge(
                session, staff, customer_id, body.other_customer_id
            )
            merge = await merge_customers(
                session,
                customer.id,
                other.id,
                reason=body.reason,
                actor=staff.actor,
                agent_id=staff.agent_id,
            )
            answer = {
                "merge_id": merge.id,
                "survivor_id": merge.survivor_id,
                "merged_id": merge.merged_id,
            }
        return web.json_response(answer)

    async def undo_merge(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        merge_id = _path_id(request)
        body = await read_model(request, UndoBody)
        async with self.database.write() as session:
            merge = await session.get(CustomerMerge, merge_id)
            if merge is None:
                raise NotFound("There is no such merge.")
            await access_customer(session, staff, merge.survivor_id, CustomerAction.MERGE)
            undone = await undo_merge(
                session, merge_id, reason=body.reason, actor=staff.actor, agent_id=staff.agent_id
            )
            answer = {
                "merge_id": undone.id,
                "survivor_id": undone.survivor_id,
                "merged_id": undone.merged_id,
                "undone_at": iso(undone.undone_at),
            }
        return web.json_response(answer)

    # -- helpers for the agent ----------------------------------------------------------------

    async def kb_suggest(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        conversation_id = _query_id(request, "conversation_id")
        if conversation_id is None:
            raise InvalidInput("Say which conversation: ?conversation_id=…")
        async with self.database.read() as session:
            await access_conversation(session, staff, conversation_id, ConversationAction.READ)
            question = await session.scalar(
                select(Message.text)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.author == Author.CUSTOMER,
                )
                .order_by(Message.id.desc())
                .limit(1)
            )
        if not question or not question.strip():
            return web.json_response({"results": [], "query": None, "answerable": False})
        result = await self.kb.search(question.strip()[:500], SUGGESTIONS)
        return web.json_response(
            {
                "results": [hit_json(h) for h in result.hits],
                "query": mask_for(staff.role, question),
                "answerable": result.answerable,
            }
        )

    async def canned_replies(self, request: web.Request) -> web.Response:
        staff = await self._staff(request)
        require_permission(staff, Permission.HANDLE_CONVERSATIONS)
        language = request.query.get("language") or None
        if language is not None and language not in SUPPORTED_LANGUAGES:
            raise InvalidInput(f"language must be one of {', '.join(sorted(SUPPORTED_LANGUAGES))}.")
        query = select(CannedReply).order_by(CannedReply.language, CannedReply.shortcut)
        if language is not None:
            query = query.where(CannedReply.language == language)
        skill = request.query.get("skill") or None
        if skill is not None:
            query = query.where((CannedReply.skill == skill) | CannedReply.skill.is_(None))
        async with self.database.read() as session:
            rows = await session.scalars(query)
            replies = [
                {
                    "id": r.id,
                    "shortcut": r.shortcut,
                    "title": r.title,
                    "text": r.text,
                    "skill": r.skill,
                    "language": r.language,
                }
                for r in rows
            ]
        return web.json_response({"replies": replies})

    async def agents(self, request: web.Request) -> web.Response:
        """The staff who take conversations, for the transfer dialog (no contact details)."""
        staff = await self._staff(request)
        require_permission(staff, Permission.HANDLE_CONVERSATIONS)
        async with self.database.read() as session:
            board = await agent_board(session, await handling_staff(session))
        fields = ("id", "display_name", "presence", "skills", "active_conversations", "capacity")
        return web.json_response({"agents": [{k: row[k] for k in fields} for row in board]})


def _path_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("There is no such record.")
    return int(raw)


def _query_id(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(f"{name} must be a whole number.")
    return int(raw)
