"""The knowledge base as the hub uses it: articles in the database, searched through the engine.

The database is the system of record; the search engine's index is derived from it and is
kept in step on every change made here, and by a watcher that notices changes made by other
processes (the CLI importer, other hubs).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from hub.storage.database import Database
from hub.storage.models import KbArticle, KbUnanswered
from knowledge import articles
from knowledge.articles import ArticleInput
from knowledge.search import SearchEngine, SyncReport
from knowledge.types import ArticleDoc, SearchResult

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


# Built once: the bot reads the article it quotes on every answer, and building a statement
# costs SQLAlchemy about as much CPU as running it (docs/benchmarks.md, "the answered turn
# without the ORM").
_ARTICLE = select(KbArticle).where(KbArticle.id == bindparam("article_id"))


@dataclass(frozen=True)
class ImportReport:
    created_or_updated: int
    unchanged: int
    index: SyncReport | None


class KnowledgeBase:
    """Article CRUD, search and the index's upkeep, safe to call from the event loop."""

    def __init__(self, database: Database, engine: SearchEngine, executor: Executor) -> None:
        self.database = database
        self.engine = engine
        self._executor = executor
        self._fingerprint: tuple[Any, ...] | None = None
        self._sync_lock = asyncio.Lock()

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        # The caller's context travels with the call (as with asyncio.to_thread), so a bot turn's
        # shared query vectors (knowledge.embedding.shared_query_vectors) reach the search.
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def sync_index(self, progress: Progress | None = None) -> SyncReport:
        """Make the index match the published articles, re-embedding only what changed."""
        async with self._sync_lock:
            async with self.database.read(scan=True) as session:
                fingerprint = await self._read_fingerprint(session)
                docs = [articles.article_to_doc(a) for a in await articles.all_searchable(session)]
            report: SyncReport = await self._run(self.engine.sync, docs, progress)
            self._fingerprint = fingerprint
            return report

    async def sync_if_changed(self) -> bool:
        """Re-sync when another process changed the articles; return whether it did."""
        async with self.database.read(scan=True) as session:
            fingerprint = await self._read_fingerprint(session)
        if fingerprint == self._fingerprint:
            return False
        await self.sync_index()
        return True

    async def watch(self, interval: float = 5.0) -> None:
        """Poll for article changes made elsewhere until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.sync_if_changed():
                    log.info("knowledge base changed elsewhere; index re-synced")
            except Exception:  # keep watching: a transient DB error must not stop upkeep
                log.exception("knowledge base watcher failed; will retry")

    async def search(self, query: str, k: int = 5, now: datetime | None = None) -> SearchResult:
        result: SearchResult = await self._run(self.engine.search, query, k, now)
        return result

    async def get_doc(self, article_id: str) -> ArticleDoc | None:
        """The published article with this id as the engine sees it, or None."""
        async with self.database.read() as session:
            article = await session.scalar(_ARTICLE, {"article_id": article_id})
            if article is None or not articles.is_searchable(article):
                return None
            return articles.article_to_doc(article)

    async def create(self, data: ArticleInput, actor: str) -> dict[str, Any]:
        async with self.database.write() as session:
            article = await articles.create_article(session, data, actor)
            doc = articles.article_to_doc(article) if articles.is_searchable(article) else None
            body = articles.article_to_json(article)
        await self._index_one(body["id"], doc)
        return body

    async def update(
        self, article_id: str, data: ArticleInput, actor: str, expected_version: int | None
    ) -> dict[str, Any]:
        async with self.database.write() as session:
            article = await articles.update_article(
                session, article_id, data, actor, expected_version
            )
            doc = articles.article_to_doc(article) if articles.is_searchable(article) else None
            body = articles.article_to_json(article)
        await self._index_one(article_id, doc)
        return body

    async def delete(self, article_id: str) -> None:
        async with self.database.write() as session:
            await articles.delete_article(session, article_id)
        await self._index_one(article_id, None)

    async def import_articles(
        self, items: Sequence[ArticleInput], actor: str, progress: Progress | None = None
    ) -> ImportReport:
        """Store all items in one transaction (all or nothing), then index what changed."""
        changed = 0
        async with self.database.write() as session:
            for item in items:
                _, was_changed = await articles.upsert_article(session, item, actor)
                changed += int(was_changed)
        report = await self.sync_index(progress)
        return ImportReport(
            created_or_updated=changed, unchanged=len(items) - changed, index=report
        )

    async def record_unanswered(
        self, question: str, language: str | None, conversation_id: int | None, result: SearchResult
    ) -> None:
        best = result.best
        async with self.database.write() as session:
            session.add(
                KbUnanswered(
                    question=question[:2000],
                    language=language,
                    conversation_id=conversation_id,
                    best_article_id=best.article_id if best else None,
                    confidence=result.confidence,
                )
            )

    async def save_index(self) -> None:
        await self._run(self.engine.save)

    async def _index_one(self, article_id: str, doc: Any) -> None:
        async with self._sync_lock:
            if doc is None:
                await self._run(self.engine.remove, article_id)
            else:
                await self._run(self.engine.upsert, doc)
            async with self.database.read() as session:
                self._fingerprint = await self._read_fingerprint(session)
        await self._run(self.engine.save)

    @staticmethod
    async def _read_fingerprint(session: Any) -> tuple[Any, ...]:
        row = (
            await session.execute(
                select(
                    func.count(KbArticle.id),
                    func.max(KbArticle.updated_at),
                    func.coalesce(func.sum(KbArticle.version), 0),
                )
            )
        ).one()
        return tuple(row)
