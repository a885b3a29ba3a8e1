"""Article storage: create, update, publish and delete KB articles, keeping every version."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.errors import Conflict, NotFound
from hub.storage.models import KbArticle, KbArticleVersion
from knowledge.types import ArticleDoc

ARTICLE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class ArticleStatus(StrEnum):
    DRAFT = "draft"
    REVIEWED = "reviewed"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class ArticleInput(BaseModel):
    """An article as an editor or an import file gives it; validated before anything is stored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str | None = Field(default=None, max_length=64)
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=50_000)
    lang: str = Field(default="zh", min_length=2, max_length=8)
    category: str = Field(default="general", min_length=1, max_length=50)
    title_alt: str | None = Field(default=None, max_length=300)
    questions: list[str] = Field(default_factory=list, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=50)
    status: ArticleStatus = ArticleStatus.PUBLISHED
    effective_from: datetime | None = None
    effective_to: datetime | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        if value is not None and not ARTICLE_ID_PATTERN.match(value):
            raise ValueError(
                "id may hold letters, digits, '_', '-' and '.', starting with a letter or digit"
            )
        return value

    @field_validator("questions", "tags")
    @classmethod
    def _drop_blank(cls, values: list[str]) -> list[str]:
        return [v.strip() for v in values if isinstance(v, str) and v.strip()]

    @field_validator("lang")
    @classmethod
    def _lower_lang(cls, value: str) -> str:
        return value.lower()

    @field_validator("effective_from", "effective_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("dates need a timezone, e.g. 2026-01-01T00:00:00+08:00")
        return value

    @model_validator(mode="after")
    def _window_in_order(self) -> ArticleInput:
        if self.effective_from and self.effective_to and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        return self


def article_to_json(article: KbArticle) -> dict[str, Any]:
    """Render an article for the API."""
    return {
        "id": article.id,
        "title": article.title,
        "body": article.body,
        "title_alt": article.title_alt,
        "questions": list(article.questions or []),
        "lang": article.lang,
        "category": article.category,
        "tags": list(article.tags or []),
        "status": article.status,
        "effective_from": _iso(article.effective_from),
        "effective_to": _iso(article.effective_to),
        "version": article.version,
        "created_at": _iso(article.created_at),
        "updated_at": _iso(article.updated_at),
        "updated_by": article.updated_by,
    }


def article_to_doc(article: KbArticle) -> ArticleDoc:
    """Turn a stored article into what the search engine indexes."""
    return ArticleDoc(
        id=article.id,
        title=article.title,
        body=article.body,
        lang=article.lang,
        category=article.category,
        title_alt=article.title_alt,
        questions=tuple(article.questions or ()),
        tags=tuple(article.tags or ()),
        effective_from=article.effective_from,
        effective_to=article.effective_to,
    )


def is_searchable(article: KbArticle) -> bool:
    """Only published articles are searched (the effective window is checked at query time)."""
    return article.status == ArticleStatus.PUBLISHED


async def get_article(session: AsyncSession, article_id: str) -> KbArticle:
    article = await session.get(KbArticle, article_id)
    if article is None:
        raise NotFound(f"There is no article with id {article_id!r}.")
    return article


async def list_articles(
    session: AsyncSession, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[KbArticle], int]:
    query = select(KbArticle)
    count = select(func.count()).select_from(KbArticle)
    if status:
        query = query.where(KbArticle.status == status)
        count = count.where(KbArticle.status == status)
    rows = await session.scalars(query.order_by(KbArticle.id).limit(limit).offset(offset))
    total = await session.scalar(count)
    return list(rows), int(total or 0)


async def all_searchable(session: AsyncSession) -> list[KbArticle]:
    rows = await session.scalars(
        select(KbArticle).where(KbArticle.status == ArticleStatus.PUBLISHED)
    )
    return list(rows)


async def create_article(session: AsyncSession, data: ArticleInput, actor: str) -> KbArticle:
    """Store a new article (version 1); refuse an id that exists."""
    article_id = data.id or f"kb-{uuid.uuid4().hex[:12]}"
    if await session.get(KbArticle, article_id) is not None:
        raise Conflict(f"An article with id {article_id!r} exists already; update it instead.")
    now = utcnow()
    article = KbArticle(id=article_id, version=1, created_at=now)
    _apply(article, data, actor, now)
    session.add(article)
    await session.flush()
    session.add(_snapshot(article))
    return article


async def update_article(
    session: AsyncSession,
    article_id: str,
    data: ArticleInput,
    actor: str,
    expected_version: int | None = None,
) -> KbArticle:
    """Replace an article's content as a new version; optimistic check on `expected_version`."""
    article = await get_article(session, article_id)
    if expected_version is not None and expected_version != article.version:
        raise Conflict(
            f"Article {article_id!r} is at version {article.version}, not {expected_version}; "
            "reload it and apply your change again."
        )
    article.version += 1
    _apply(article, data, actor, utcnow())
    await session.flush()
    session.add(_snapshot(article))
    return article


async def upsert_article(
    session: AsyncSession, data: ArticleInput, actor: str
) -> tuple[KbArticle, bool]:
    """Create the article, or update it when its id exists and its content changed."""
    if data.id is not None:
        existing = await session.get(KbArticle, data.id)
        if existing is not None:
            if _same_content(existing, data):
                return existing, False
            return await update_article(session, data.id, data, actor), True
    return await create_article(session, data, actor), True


async def delete_article(session: AsyncSession, article_id: str) -> None:
    await get_article(session, article_id)
    await session.execute(delete(KbArticleVersion).where(KbArticleVersion.article_id == article_id))
    await session.execute(delete(KbArticle).where(KbArticle.id == article_id))


async def article_versions(session: AsyncSession, article_id: str) -> Sequence[KbArticleVersion]:
    await get_article(session, article_id)
    rows = await session.scalars(
        select(KbArticleVersion)
        .where(KbArticleVersion.article_id == article_id)
        .order_by(KbArticleVersion.version)
    )
    return list(rows)


def version_to_json(version: KbArticleVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "title": version.title,
        "body": version.body,
        "title_alt": version.title_alt,
        "questions": list(version.questions or []),
        "lang": version.lang,
        "category": version.category,
        "tags": list(version.tags or []),
        "status": version.status,
        "effective_from": _iso(version.effective_from),
        "effective_to": _iso(version.effective_to),
        "created_at": _iso(version.created_at),
        "created_by": version.created_by,
    }


def _apply(article: KbArticle, data: ArticleInput, actor: str, now: datetime) -> None:
    article.title = data.title
    article.body = data.body
    article.title_alt = data.title_alt or None
    article.questions = list(data.questions)
    article.lang = data.lang
    article.category = data.category
    article.tags = list(data.tags)
    article.status = data.status.value
    article.effective_from = data.effective_from
    article.effective_to = data.effective_to
    article.updated_at = now
    article.updated_by = actor


def _same_content(article: KbArticle, data: ArticleInput) -> bool:
    return (
        article.title == data.title
        and article.body == data.body
        and (article.title_alt or None) == (data.title_alt or None)
        and list(article.questions or []) == list(data.questions)
        and article.lang == data.lang
        and article.category == data.category
        and list(article.tags or []) == list(data.tags)
        and article.status == data.status.value
        and article.effective_from == data.effective_from
        and article.effective_to == data.effective_to
    )


def _snapshot(article: KbArticle) -> KbArticleVersion:
    return KbArticleVersion(
        article_id=article.id,
        version=article.version,
        title=article.title,
        body=article.body,
        title_alt=article.title_alt,
        questions=list(article.questions or []),
        lang=article.lang,
        category=article.category,
        tags=list(article.tags or []),
        status=article.status,
        effective_from=article.effective_from,
        effective_to=article.effective_to,
        created_at=article.updated_at,
        created_by=article.updated_by,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
