"""faiss vector index: slot ids, live removal, the IVF switch and persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowledge.index import VectorIndex


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def test_search_returns_owning_slots_best_view_first() -> None:
    rng = np.random.default_rng(1)
    index = VectorIndex(16)
    vectors = _unit(rng, 3, 16)
    index.add(7, vectors)
    index.add(9, _unit(rng, 2, 16))
    best = index.best_per_slot(vectors[1], n_slots=5, n_vectors=10)
    assert next(iter(best)) == 7
    assert best[7] == np.float32(1.0) or abs(best[7] - 1.0) < 1e-5


def test_remove_drops_every_view_of_a_slot() -> None:
    rng = np.random.default_rng(2)
    index = VectorIndex(16)
    index.add(1, _unit(rng, 4, 16))
    index.add(2, _unit(rng, 4, 16))
    index.remove(1)
    assert index.ntotal == 4
    slots, _ = index.search(_unit(rng, 1, 16)[0], 10)
    assert set(slots.tolist()) == {2}


def test_switches_to_ivf_and_still_adds_and_removes_live() -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex(16, ivf_min_vectors=2000, nprobe=64)
    vectors = _unit(rng, 2100, 16)
    slots = np.arange(2100) // 3
    views = np.arange(2100) % 3
    index.add_many(slots, views, vectors)
    assert index.layout.kind == "ivf"
    best = index.best_per_slot(vectors[300], n_slots=3, n_vectors=20)
    assert next(iter(best)) == 100
    index.remove(100)
    assert 100 not in index.best_per_slot(vectors[300], n_slots=3, n_vectors=20)
    index.add(5000, vectors[300:301])
    assert next(iter(index.best_per_slot(vectors[300], n_slots=3, n_vectors=20))) == 5000


def test_save_and_load_keep_kind_and_contents(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    for threshold in (10_000, 500):
        index = VectorIndex(8, ivf_min_vectors=threshold)
        vectors = _unit(rng, 600, 8)
        index.add_many(np.arange(600), np.zeros(600), vectors)
        path = tmp_path / f"v{threshold}.faiss"
        index.save(path)
        loaded = VectorIndex.load(path, 8)
        assert loaded.layout.kind == index.layout.kind
        assert loaded.ntotal == 600
        ids, _ = loaded.all_vectors()
        assert sorted(ids.tolist()) == sorted((np.arange(600) << 6).tolist())
