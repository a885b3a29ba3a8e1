"""Values the knowledge base hands across its boundary: what is indexed, what a search returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ArticleDoc:
    """A published article as the search engine sees it (one current version)."""

    id: str
    title: str
    body: str
    lang: str
    category: str
    title_alt: str | None = None
    questions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    effective_from: datetime | None = None
    effective_to: datetime | None = None

    def content_hash(self) -> str:
        """Fingerprint of everything that changes the article's vectors or keywords."""
        payload = json.dumps(
            [
                self.title,
                self.body,
                self.lang,
                self.category,
                self.title_alt,
                list(self.questions),
                list(self.tags),
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]

    def is_effective(self, now: datetime) -> bool:
        """True when `now` lies inside the article's effective window."""
        if self.effective_from is not None and now < self.effective_from:
            return False
        return not (self.effective_to is not None and now >= self.effective_to)


@dataclass(frozen=True)
class SearchHit:
    """One article found for a query."""

    article_id: str
    title: str
    score: float
    snippet: str
    category: str
    lang: str


@dataclass(frozen=True)
class SearchResult:
    """Ranked hits plus the answer gate's verdict on the best one."""

    query: str
    hits: tuple[SearchHit, ...]
    answerable: bool
    confidence: float
    signals: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> SearchHit | None:
        return self.hits[0] if self.hits else None
