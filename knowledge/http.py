"""The KB's HTTP API: public search; article CRUD and unanswered questions for editors.

Editing needs a staff session whose role has `edit_kb` (knowledge editors, admins) or the
admin token (automation). Unanswered questions are customers' own words, so they are
masked (card, ID, phone numbers) before an editor sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from hub.errors import InvalidInput
from hub.http import parse_model, query_int, read_json, read_model
from hub.permissions import Permission
from hub.settings import Settings
from hub.staff_auth import require_permission, staff_from_request
from hub.storage.models import KbUnanswered
from knowledge import articles
from knowledge.articles import ArticleInput
from knowledge.service import KnowledgeBase
from knowledge.types import SearchHit

MAX_QUERY_CHARS = 500


def hit_json(hit: SearchHit) -> dict[str, Any]:
    """One search result as `/api/kb/search` (and the console's suggestions) show it."""
    return {
        "id": hit.article_id,
        "title": hit.title,
        "score": round(hit.score, 4),
        "snippet": hit.snippet,
        "category": hit.category,
        "lang": hit.lang,
    }


class KnowledgeRoutes:
    """Thin handlers: parse, call the knowledge base, render."""

    def __init__(
        self, kb: KnowledgeBase, settings: Settings, *, mask: Callable[[str], str]
    ) -> None:
        self.kb = kb
        self.settings = settings
        self.mask = mask  # the console's masking, injected by the wiring

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/kb/search", self.search)
        app.router.add_get("/api/kb/articles", self.list)
        app.router.add_post("/api/kb/articles", self.create)
        app.router.add_get("/api/kb/articles/{id}", self.get)
        app.router.add_put("/api/kb/articles/{id}", self.update)
        app.router.add_delete("/api/kb/articles/{id}", self.delete)
        app.router.add_get("/api/kb/articles/{id}/versions", self.versions)
        app.router.add_get("/api/kb/unanswered", self.unanswered)

    async def _editor(self, request: web.Request) -> str:
        staff = await staff_from_request(request, self.kb.database, self.settings.admin_token)
        require_permission(staff, Permission.EDIT_KB)
        return staff.actor

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "").strip()
        if not query:
            raise InvalidInput("Give the question to search for as ?q=…")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"q must be at most {MAX_QUERY_CHARS} characters.")
        k = query_int(request, "k", 5, 1, 50)
        result = await self.kb.search(query, k)
        return web.json_response(
            {
                "results": [hit_json(h) for h in result.hits],
                "answerable": result.answerable,
                "confidence": round(result.confidence, 4),
            }
        )

    async def list(self, request: web.Request) -> web.Response:
        await self._editor(request)
        limit = query_int(request, "limit", 100, 1, 1000)
        offset = query_int(request, "offset", 0, 0, 10**9)
        status = request.query.get("status") or None
        async with self.kb.database.read(scan=True) as session:
            rows, total = await articles.list_articles(
                session, status=status, limit=limit, offset=offset
            )
            body = [articles.article_to_json(a) for a in rows]
        return web.json_response(
            {"articles": body, "total": total, "limit": limit, "offset": offset}
        )

    async def get(self, request: web.Request) -> web.Response:
        await self._editor(request)
        async with self.kb.database.read() as session:
            article = await articles.get_article(session, request.match_info["id"])
            return web.json_response(articles.article_to_json(article))

    async def create(self, request: web.Request) -> web.Response:
        actor = await self._editor(request)
        data = await read_model(request, ArticleInput)
        return web.json_response(await self.kb.create(data, actor), status=201)

    async def update(self, request: web.Request) -> web.Response:
        actor = await self._editor(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InvalidInput("The request body must be a JSON object.")
        article_id = request.match_info["id"]
        if body.get("id") not in (None, article_id):
            raise InvalidInput("The id in the body differs from the id in the URL.")
        expected = body.pop("version", None)
        if expected is not None and not isinstance(expected, int):
            raise InvalidInput("version must be the whole-number version you edited.")
        data = parse_model(ArticleInput, {**body, "id": article_id})
        return web.json_response(await self.kb.update(article_id, data, actor, expected))

    async def delete(self, request: web.Request) -> web.Response:
        await self._editor(request)
        await self.kb.delete(request.match_info["id"])
        return web.json_response({"deleted": request.match_info["id"]})

    async def versions(self, request: web.Request) -> web.Response:
        await self._editor(request)
        async with self.kb.database.read() as session:
            rows = await articles.article_versions(session, request.match_info["id"])
            return web.json_response({"versions": [articles.version_to_json(v) for v in rows]})

    async def unanswered(self, request: web.Request) -> web.Response:
        """Questions the KB could not answer, newest first, for editors to write articles."""
        await self._editor(request)
        limit = query_int(request, "limit", 100, 1, 1000)
        offset = query_int(request, "offset", 0, 0, 10**9)
        async with self.kb.database.read(scan=True) as session:
            total = await session.scalar(select(func.count()).select_from(KbUnanswered))
            rows = await session.scalars(
                select(KbUnanswered)
                .order_by(KbUnanswered.created_at.desc(), KbUnanswered.id.desc())
                .limit(limit)
                .offset(offset)
            )
            body = [
                {
                    "id": row.id,
                    "question": self.mask(row.question),
                    "language": row.language,
                    "conversation_id": row.conversation_id,
                    "best_article_id": row.best_article_id,
                    "confidence": row.confidence,
                    "created_at": row.created_at.isoformat(),
                }
                for row in rows
            ]
        return web.json_response(
            {"questions": body, "total": int(total or 0), "limit": limit, "offset": offset}
        )
