"""Session-scoped fixtures for KB search tests (the `embedders` fixture is the suite-wide one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.embedding import Embedder
from knowledge.evaluation import load_eval_file
from knowledge.search import SearchEngine
from knowledge.types import ArticleDoc

HOLDOUT = Path(__file__).resolve().parents[1] / "data" / "kb-holdout.jsonl"


@pytest.fixture(scope="session")
def holdout_docs() -> list[ArticleDoc]:
    """The 28 articles of the project's own holdout set."""
    docs, _ = load_eval_file(HOLDOUT)
    return docs


@pytest.fixture(scope="session")
def small_docs(holdout_docs: list[ArticleDoc]) -> list[ArticleDoc]:
    """A handful of articles, cheap to embed again in tests that change the index."""
    wanted = {"ho03", "ho05", "ho11", "ho12", "ho20", "ho23", "ho28"}
    return [d for d in holdout_docs if d.id in wanted]


@pytest.fixture(scope="session")
def holdout_engine(embedders: list[Embedder], holdout_docs: list[ArticleDoc]) -> SearchEngine:
    """A read-only engine over the holdout KB (tests must not change it)."""
    engine = SearchEngine(embedders, None)
    engine.sync(holdout_docs)
    return engine
