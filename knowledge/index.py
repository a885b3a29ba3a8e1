"""Dense vector index (faiss) with article-slot ids, live add/remove and an automatic IVF switch."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from knowledge.embedding import Embedder
from knowledge.keyword import KeywordIndex
from knowledge.types import ArticleDoc

# Vector id = slot << SLOT_SHIFT | view number: the owning article is a shift away (no id map
# to keep in sync) and removing an article is one range delete.
SLOT_SHIFT = 6
MAX_VIEWS = 1 << SLOT_SHIFT

# Measured with bench/kb_search.py on 2 cores: a flat scan of 384-d vectors costs ~3 ms per 25k
# vectors, so beyond ~50k vectors (≈ 12k articles with several views each) two models' flat
# scans alone would eat most of the 15 ms budget; IVF keeps each search around a millisecond.
IVF_MIN_VECTORS = 50_000
# Re-cluster when the index has grown this much since the IVF was trained.
IVF_RETRAIN_GROWTH = 2.0


@dataclass(frozen=True)
class IndexLayout:
    """What kind of faiss index is in use and how it is tuned."""

    kind: str  # "flat" | "ivf"
    nlist: int = 0
    nprobe: int = 0
    trained_on: int = 0


def ivf_nlist(n_vectors: int) -> int:
    """Pick the number of IVF cells: ~2·sqrt(n), a few hundred vectors per cell at this scale."""
    return int(min(65536, max(64, 2 * np.sqrt(n_vectors))))


class VectorIndex:
    """Inner-product (cosine on unit vectors) index whose ids encode the owning article slot."""

    def __init__(self, dim: int, ivf_min_vectors: int = IVF_MIN_VECTORS, nprobe: int = 24) -> None:
        self.dim = dim
        self.ivf_min_vectors = ivf_min_vectors
        self.nprobe = nprobe
        self._index: Any = self._new_flat()
        self._quantizer: Any = None
        self.layout = IndexLayout("flat")

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def add(self, slot: int, vectors: np.ndarray) -> None:
        """Add an article's vectors (at most MAX_VIEWS rows) under `slot`."""
        if len(vectors) > MAX_VIEWS:
            raise ValueError(f"an article may have at most {MAX_VIEWS} vectors")
        ids = (np.int64(slot) << SLOT_SHIFT) + np.arange(len(vectors), dtype=np.int64)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._maybe_switch()

    def add_many(self, slots: np.ndarray, views: np.ndarray, vectors: np.ndarray) -> None:
        """Add many vectors at once: row i belongs to article `slots[i]`, view `views[i]`."""
        ids = (slots.astype(np.int64) << SLOT_SHIFT) + views.astype(np.int64)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._maybe_switch()

    def remove(self, slot: int) -> None:
        """Remove every vector of the article in `slot`."""
        lo = np.int64(slot) << SLOT_SHIFT
        self._index.remove_ids(faiss.IDSelectorRange(int(lo), int(lo + MAX_VIEWS)))

    def search(self, query: np.ndarray, n_vectors: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (slots, scores) of the best vectors, best first, several per slot possible."""
        if self.ntotal == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        k = min(n_vectors, self.ntotal)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        # One query gains nothing from faiss's OpenMP team: with k >= 100 its parallel path
        # took 20 ms instead of 3 ms on 2 cores (bench/kb_search.py), and searches already run
        # concurrently on executor threads. The setting is per calling thread, hence here.
        faiss.omp_set_num_threads(1)
        if self.layout.kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = self.nprobe
            scores, ids = self._index.search(q, k, params=params)
        else:
            scores, ids = self._index.search(q, k)
        keep = ids[0] >= 0
        return ids[0][keep] >> SLOT_SHIFT, scores[0][keep]

    def best_per_slot(self, query: np.ndarray, n_slots: int, n_vectors: int) -> dict[int, float]:
        """Return up to `n_slots` articles with their best vector score (max over views)."""
        slots, scores = self.search(query, n_vectors)
        best: dict[int, float] = {}
        for slot, score in zip(slots.tolist(), scores.tolist(), strict=True):
            if slot not in best:
                best[slot] = score
                if len(best) >= n_slots:
                    break
        return best

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids, vectors) of everything in the index."""
        n = self.ntotal
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        if self.layout.kind == "flat":
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            return ids, self._index.index.reconstruct_n(0, n)
        invlists = self._index.invlists
        id_parts, vec_parts = [], []
        for cell in range(self._index.nlist):
            size = invlists.list_size(cell)
            if size == 0:
                continue
            ids = faiss.rev_swig_ptr(invlists.get_ids(cell), size).copy()
            codes = faiss.rev_swig_ptr(invlists.get_codes(cell), size * self.dim * 4).copy()
            id_parts.append(ids)
            vec_parts.append(codes.view(np.float32).reshape(size, self.dim))
        return np.concatenate(id_parts), np.concatenate(vec_parts)

    def save(self, path: Path) -> None:
        """Write the faiss index to `path`."""
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, dim: int, ivf_min_vectors: int = IVF_MIN_VECTORS) -> VectorIndex:
        """Read an index written by `save`; raise ValueError when it does not fit `dim`."""
        raw = faiss.read_index(str(path))
        if raw.d != dim:
            raise ValueError(f"index {path.name} has dimension {raw.d}, expected {dim}")
        index = cls(dim, ivf_min_vectors)
        # read_index returns the concrete class; keep that object itself (a downcast copy of
        # the pointer would not own the index and dangle once `raw` is collected).
        index._index = raw
        if isinstance(raw, faiss.IndexIVF):
            index._quantizer = raw.quantizer
            index.layout = IndexLayout("ivf", raw.nlist, index.nprobe, int(raw.ntotal))
        return index

    # --- internals ---------------------------------------------------------------------------

    def _new_flat(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _maybe_switch(self) -> None:
        n = self.ntotal
        if self.layout.kind == "flat":
            due = n >= self.ivf_min_vectors
        else:
            due = n >= IVF_RETRAIN_GROWTH * self.layout.trained_on
        if due:
            self._rebuild_ivf()

    def _rebuild_ivf(self) -> None:
        """Re-cluster everything into a fresh IVF (remove_ids scans the lists: no id map needed)."""
        ids, vectors = self.all_vectors()
        nlist = ivf_nlist(len(vectors))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # k-means on 40 points per cell (faiss asks for 39) and 10 iterations: cells only route
        # the search (nprobe cells are scanned exactly), so rougher centroids cost a little
        # recall, not accuracy, and re-clustering 500k vectors takes seconds, not minutes.
        ivf.cp.niter = 10
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), 40 * nlist), replace=False)]
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # a bulk job: use every core here
        ivf.train(sample)
        ivf.add_with_ids(vectors, ids)
        self._quantizer = quantizer  # the IVF borrows it: keep it alive as long as the index
        self._index = ivf
        self.layout = IndexLayout("ivf", nlist, self.nprobe, len(vectors))


# --- persistence of the whole search index -------------------------------------------------------

# Bump when what goes into a vector or a keyword row changes: older files are then rebuilt.
FORMAT_VERSION = 1
_META = "kb-index.json"


@dataclass(frozen=True)
class StoredArticle:
    """One article as persisted next to its vectors."""

    doc: ArticleDoc
    slot: int
    digest: str
    concepts: list[int]
    terms: list[str]


@dataclass(frozen=True)
class StoredState:
    """Everything `IndexStore.load` recovers."""

    articles: list[StoredArticle]
    vectors: list[VectorIndex]
    keywords: KeywordIndex
    next_slot: int


class IndexStore:
    """Files of one index directory: a faiss file per embedder, the BM25 matrix, a JSON manifest."""

    def __init__(self, directory: Path, embedders: Sequence[Embedder]) -> None:
        self.directory = directory
        self.embedders = list(embedders)

    def _vector_file(self, embedder: Embedder) -> Path:
        return self.directory / f"vectors-{embedder.name}.faiss"

    def _keyword_file(self) -> Path:
        return self.directory / "keywords.npz"

    def save(
        self,
        articles: Sequence[StoredArticle],
        vectors: Sequence[VectorIndex],
        keywords: KeywordIndex,
        next_slot: int,
    ) -> None:
        """Write every file atomically, the manifest (with checksums) last."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        for embedder, index in zip(self.embedders, vectors, strict=True):
            path = self._vector_file(embedder)
            _atomic_write(path, index.save)
            files[path.name] = _sha256(path)
        path = self._keyword_file()
        _atomic_write(path, keywords.save)
        files[path.name] = _sha256(path)
        manifest = {
            "format": FORMAT_VERSION,
            "vocabulary": vocabulary_fingerprint(),
            "embedders": [{"name": e.name, "dim": e.dim} for e in self.embedders],
            "files": files,
            "next_slot": next_slot,
            "articles": [
                {
                    "doc": _doc_to_json(a.doc),
                    "slot": a.slot,
                    "digest": a.digest,
                    "concepts": a.concepts,
                    "terms": a.terms,
                }
                for a in articles
            ],
        }
        _atomic_write(
            self.directory / _META,
            lambda p: p.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8"),
        )

    def load(self) -> StoredState | None:
        """Read the index; None when missing, corrupt or built by other embedders or code."""
        try:
            manifest = json.loads((self.directory / _META).read_text(encoding="utf-8"))
            if not self._compatible(manifest):
                return None
            vectors = [VectorIndex.load(self._vector_file(e), e.dim) for e in self.embedders]
            keywords = KeywordIndex.load(self._keyword_file())
            articles = [
                StoredArticle(
                    _doc_from_json(a["doc"]),
                    int(a["slot"]),
                    str(a["digest"]),
                    [int(c) for c in a["concepts"]],
                    [str(t) for t in a["terms"]],
                )
                for a in manifest["articles"]
            ]
            next_slot = int(manifest["next_slot"])
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            # faiss raises RuntimeError on a truncated file; any damage means: rebuild.
            return None
        slots = {a.slot for a in articles}
        if len(keywords) != len(articles) or any(s >= next_slot for s in slots):
            return None
        return StoredState(articles, vectors, keywords, next_slot)

    def _compatible(self, manifest: dict[str, Any]) -> bool:
        expected = [{"name": e.name, "dim": e.dim} for e in self.embedders]
        if manifest.get("format") != FORMAT_VERSION or manifest.get("embedders") != expected:
            return False
        if manifest.get("vocabulary") != vocabulary_fingerprint():
            return False
        files: dict[str, str] = manifest.get("files", {})
        wanted = [self._vector_file(e).name for e in self.embedders] + [self._keyword_file().name]
        return all(
            (self.directory / name).is_file() and files.get(name) == _sha256(self.directory / name)
            for name in wanted
        )


def vocabulary_fingerprint() -> str:
    """Hash the bundled vocabulary files: a changed lexicon means stale keyword rows."""
    digest = hashlib.sha256()
    data = resources.files("knowledge.data")
    for name in sorted(p.name for p in data.iterdir() if p.name.endswith(".txt")):
        digest.update(name.encode())
        digest.update(data.joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _doc_to_json(doc: ArticleDoc) -> dict[str, Any]:
    return {
        "id": doc.id,
        "title": doc.title,
        "body": doc.body,
        "lang": doc.lang,
        "category": doc.category,
        "title_alt": doc.title_alt,
        "questions": list(doc.questions),
        "tags": list(doc.tags),
        "effective_from": doc.effective_from.isoformat() if doc.effective_from else None,
        "effective_to": doc.effective_to.isoformat() if doc.effective_to else None,
    }


def _doc_from_json(raw: dict[str, Any]) -> ArticleDoc:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return ArticleDoc(
        id=str(raw["id"]),
        title=str(raw["title"]),
        body=str(raw["body"]),
        lang=str(raw["lang"]),
        category=str(raw["category"]),
        title_alt=raw.get("title_alt"),
        questions=tuple(raw.get("questions") or ()),
        tags=tuple(raw.get("tags") or ()),
        effective_from=when(raw.get("effective_from")),
        effective_to=when(raw.get("effective_to")),
    )
