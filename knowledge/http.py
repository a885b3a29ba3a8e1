"""The KB's HTTP API: public search, and article CRUD for editors (admin token for now)."""

from __future__ import annotations

from aiohttp import web

from hub.errors import InvalidInput
from hub.http import parse_model, query_int, read_json, read_model, require_token
from hub.settings import Settings
from knowledge import articles
from knowledge.articles import ArticleInput
from knowledge.service import KnowledgeBase

MAX_QUERY_CHARS = 500
ADMIN = "admin token (SERVICEHUB_ADMIN_TOKEN)"


class KnowledgeRoutes:
    """Thin handlers: parse, call the knowledge base, render."""

    def __init__(self, kb: KnowledgeBase, settings: Settings) -> None:
        self.kb = kb
        self.settings = settings

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/kb/search", self.search)
        app.router.add_get("/api/kb/articles", self.list)
        app.router.add_post("/api/kb/articles", self.create)
        app.router.add_get("/api/kb/articles/{id}", self.get)
        app.router.add_put("/api/kb/articles/{id}", self.update)
        app.router.add_delete("/api/kb/articles/{id}", self.delete)
        app.router.add_get("/api/kb/articles/{id}/versions", self.versions)

    def _editor(self, request: web.Request) -> str:
        require_token(request, self.settings.admin_token, ADMIN)
        return "admin-token"

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
                "results": [
                    {
                        "id": h.article_id,
                        "title": h.title,
                        "score": round(h.score, 4),
                        "snippet": h.snippet,
                        "category": h.category,
                        "lang": h.lang,
                    }
                    for h in result.hits
                ],
                "answerable": result.answerable,
                "confidence": round(result.confidence, 4),
            }
        )

    async def list(self, request: web.Request) -> web.Response:
        self._editor(request)
        limit = query_int(request, "limit", 100, 1, 1000)
        offset = query_int(request, "offset", 0, 0, 10**9)
        status = request.query.get("status") or None
        async with self.kb.database.read() as session:
            rows, total = await articles.list_articles(
                session, status=status, limit=limit, offset=offset
            )
            body = [articles.article_to_json(a) for a in rows]
        return web.json_response(
            {"articles": body, "total": total, "limit": limit, "offset": offset}
        )

    async def get(self, request: web.Request) -> web.Response:
        self._editor(request)
        async with self.kb.database.read() as session:
            article = await articles.get_article(session, request.match_info["id"])
            return web.json_response(articles.article_to_json(article))

    async def create(self, request: web.Request) -> web.Response:
        actor = self._editor(request)
        data = await read_model(request, ArticleInput)
        return web.json_response(await self.kb.create(data, actor), status=201)

    async def update(self, request: web.Request) -> web.Response:
        actor = self._editor(request)
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
        self._editor(request)
        await self.kb.delete(request.match_info["id"])
        return web.json_response({"deleted": request.match_info["id"]})

    async def versions(self, request: web.Request) -> web.Response:
        self._editor(request)
        async with self.kb.database.read() as session:
            rows = await articles.article_versions(session, request.match_info["id"])
            return web.json_response({"versions": [articles.version_to_json(v) for v in rows]})
