"""The hub's bot-facing API: what an external bot (Rasa's action server) may ask the hub.

Every route needs the bot service token (`SERVICEHUB_BOT_SERVICE_TOKEN`). The KB answer runs
the hub's own search and answer gate and composes the answer exactly as the embedded bot
does, so both bots quote and cite alike. Holdings are served only for a conversation the
hub has verified, only with a live turn grant for it (`bots/turn_grants.py`), always for the
customer the hub's own record names, never one the caller names; every read is audited.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bots.embedded import EmbeddedBot
from bots.turn_grants import TurnGrants
from hub.errors import Forbidden, InvalidInput, NotFound
from hub.http import require_token
from hub.language import SUPPORTED_LANGUAGES
from hub.settings import Settings
from hub.storage.database import Database
from hub.storage.models import AuditLog, Conversation, Customer, Holding
from knowledge.service import KnowledgeBase

log = logging.getLogger(__name__)

SERVICE = "bot service token (SERVICEHUB_BOT_SERVICE_TOKEN)"
TURN_HEADER = "X-Servicehub-Turn"
AUDIT_ACTOR = "service:rasa"
MAX_QUESTION_CHARS = 1000
HOLDING_KINDS = frozenset({"deposit", "loan", "wealth", "insurance", "securities", "card"})
VISIBLE_DIGITS = 4


class NotVerified(Forbidden):
    """The conversation's customer has not proven who they are: no account data for them."""

    code = "not_verified"


class BotApiRoutes:
    """Thin handlers: check the service token, parse, ask the KB or the database, render."""

    def __init__(
        self,
        database: Database,
        kb: KnowledgeBase,
        bot: EmbeddedBot,
        grants: TurnGrants,
        settings: Settings,
    ) -> None:
        self.database = database
        self.kb = kb
        self.bot = bot
        self.grants = grants
        self.settings = settings

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/bot/kb/answer", self.kb_answer)
        app.router.add_get("/api/bot/conversations/{id}/holdings", self.holdings)

    async def kb_answer(self, request: web.Request) -> web.Response:
        """`?q=&conversation_id=&language=&intent=&record=`: search + gate, a cited answer."""
        require_token(request, self.settings.bot_service_token, SERVICE)
        question = request.query.get("q", "").strip()
        if not question:
            raise InvalidInput("Give the customer's question as ?q=…")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidInput(f"q must be at most {MAX_QUESTION_CHARS} characters.")
        conversation = await self._conversation(_conversation_id(request.query))
        language = request.query.get("language") or conversation.language or "zh"
        if language not in SUPPORTED_LANGUAGES:
            raise InvalidInput(f"language must be one of {', '.join(SUPPORTED_LANGUAGES)}.")
        intent = request.query.get("intent") or None
        verdict = await self.bot.consult_kb(question, language, conversation.topic, intent)
        answer = verdict.answer
        if answer is None and request.query.get("record") == "1":
            await self.kb.record_unanswered(question, language, conversation.id, verdict.result)
        return web.json_response(
            {
                "answerable": answer is not None,
                "text": answer.texts[0] if answer is not None else None,
                "sources": [{"id": s.id, "title": s.title} for s in answer.sources]
                if answer is not None
                else [],
                "topic": answer.topic if answer is not None else None,
                "skill": verdict.skill,
                "confidence": round(verdict.result.confidence, 4),
                "signals": {k: round(v, 4) for k, v in verdict.result.signals.items()},
            }
        )

    async def holdings(self, request: web.Request) -> web.Response:
        """The verified conversation's customer's holdings, account numbers masked; audited."""
        require_token(request, self.settings.bot_service_token, SERVICE)
        conversation_id = _int_id(request.match_info["id"], "conversation id")
        if not self.grants.is_valid(conversation_id, request.headers.get(TURN_HEADER, "")):
            raise Forbidden(
                f"Holdings need a live turn grant for conversation {conversation_id} "
                f"(the {TURN_HEADER} header, from the hub's message metadata)."
            )
        kinds = _kinds(request.query.getall("kind", []))
        async with self.database.write() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound(f"There is no conversation {conversation_id}.")
            if not conversation.verified:
                raise NotVerified("The customer in this conversation is not verified.")
            customer = await session.get(Customer, conversation.customer_id)
            assert customer is not None  # foreign key
            query = select(Holding).where(Holding.customer_id == customer.id)
            if kinds:
                query = query.where(Holding.kind.in_(kinds))
            rows = list(await session.scalars(query.order_by(Holding.kind, Holding.id)))
            session.add(
                AuditLog(
                    actor=AUDIT_ACTOR,
                    action="customer.holdings.read",
                    subject_type="customer",
                    subject_id=str(customer.id),
                    reason="The verified customer asked the bot about their own products.",
                    details={
                        "conversation_id": conversation.id,
                        "kinds": sorted(kinds),
                        "holdings": len(rows),
                    },
                )
            )
            body = {
                "customer": {"name": customer.display_name},
                "holdings": [_holding_json(h) for h in rows],
            }
        log.info(
            "bot read %d holdings of customer %s (conversation %s)",
            len(rows),
            customer.id,
            conversation_id,
        )
        return web.json_response(body)

    async def _conversation(self, conversation_id: int) -> Conversation:
        async with self.database.read() as session:
            conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise NotFound(f"There is no conversation {conversation_id}.")
        return conversation


def mask_account(number: str | None) -> str | None:
    """Show only the last four digits: what a person or the bot may see without a reveal."""
    if not number:
        return None
    return "*" * 4 + number[-VISIBLE_DIGITS:]


def _holding_json(holding: Holding) -> dict[str, Any]:
    return {
        "kind": holding.kind,
        "product_name": holding.product_name,
        "account": mask_account(holding.account_number),
        "amount": _decimal(holding.amount),
        "currency": holding.currency,
        "maturity_date": holding.maturity_date.isoformat() if holding.maturity_date else None,
        "status": holding.status,
    }


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _conversation_id(query: Any) -> int:
    raw = query.get("conversation_id")
    if not raw:
        raise InvalidInput("Give the conversation as ?conversation_id=…")
    return _int_id(raw, "conversation_id")


def _int_id(raw: str, what: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(f"{what} must be a whole number.")
    return int(raw)


def _kinds(raw: list[str]) -> set[str]:
    unknown = sorted(set(raw) - HOLDING_KINDS)
    if unknown:
        raise InvalidInput(
            f"Unknown holding kind(s) {', '.join(unknown)}; use {', '.join(sorted(HOLDING_KINDS))}."
        )
    return set(raw)
