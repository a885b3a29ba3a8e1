"""BM25 keyword ranking over analysed terms, as a sparse matrix with cheap live updates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

# Live updates land in a small "pending" set scored row by row; the sparse matrix is rebuilt
# once the pending set passes this share of the corpus (and at least _MIN_PENDING rows), so
# an upsert is O(its own terms) and a rebuild is amortised over many upserts.
_PENDING_SHARE = 0.02
_MIN_PENDING = 64


@dataclass(frozen=True)
class _Row:
    cols: np.ndarray  # int32 term ids
    tf: np.ndarray  # float32 term frequencies
    length: float


class KeywordIndex:
    """Okapi BM25 over documents keyed by integer slot; thread-unsafe, callers serialise writes."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._vocab: dict[str, int] = {}
        self._df: np.ndarray = np.zeros(0, dtype=np.int64)
        self._rows: dict[int, _Row] = {}
        self._total_length = 0.0
        self._matrix: sp.csc_matrix = sp.csc_matrix((0, 0), dtype=np.float32)
        self._matrix_slots: np.ndarray = np.zeros(0, dtype=np.int64)  # matrix row -> slot
        self._stale: np.ndarray = np.zeros(0, dtype=bool)  # matrix rows replaced or removed
        self._slot_row: dict[int, int] = {}  # slot -> matrix row
        self._pending: set[int] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def set(self, slot: int, terms: Sequence[str], rebuild_when_due: bool = True) -> None:
        """Index (or re-index) a document's terms under `slot`.

        Bulk loaders pass rebuild_when_due=False and call `rebuild` once at the end.
        """
        self.remove(slot)
        counts = Counter(terms)
        cols = np.fromiter((self._term_id(t) for t in counts), dtype=np.int32, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        row = _Row(cols, tf, float(tf.sum()))
        self._rows[slot] = row
        self._total_length += row.length
        np.add.at(self._df, cols, 1)
        self._pending.add(slot)
        if rebuild_when_due:
            self._maybe_rebuild()

    def remove(self, slot: int) -> None:
        """Forget the document under `slot` (no-op when absent)."""
        row = self._rows.pop(slot, None)
        if row is None:
            return
        self._total_length -= row.length
        np.subtract.at(self._df, row.cols, 1)
        self._pending.discard(slot)
        self._mark_stale(slot)

    def rebuild(self) -> None:
        """Fold pending updates into the sparse matrix (length normalisation refreshed too)."""
        slots = np.fromiter(self._rows, dtype=np.int64, count=len(self._rows))
        avgdl = self._avgdl()
        indptr = np.zeros(len(slots) + 1, dtype=np.int64)
        cols_parts, data_parts = [], []
        for i, slot in enumerate(slots):
            row = self._rows[int(slot)]
            cols_parts.append(row.cols)
            data_parts.append(self._saturate(row.tf, row.length, avgdl))
            indptr[i + 1] = indptr[i] + len(row.cols)
        cols = np.concatenate(cols_parts) if cols_parts else np.zeros(0, dtype=np.int32)
        data = np.concatenate(data_parts) if data_parts else np.zeros(0, dtype=np.float32)
        csr = sp.csr_matrix((data, cols, indptr), shape=(len(slots), len(self._vocab)))
        self._matrix = csr.tocsc()
        self._matrix_slots = slots
        self._stale = np.zeros(len(slots), dtype=bool)
        self._slot_row = {int(s): i for i, s in enumerate(slots)}
        self._pending.clear()

    def top(self, terms: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the best `n` (slots, scores) for a query, highest first; zero scores dropped."""
        weights = self._query_weights(terms)
        if not weights or not self._rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        cols = np.fromiter(weights, dtype=np.int64, count=len(weights))
        w = np.fromiter(weights.values(), dtype=np.float32, count=len(weights))
        slots, scores = self._matrix_scores(cols, w)
        if self._pending:
            extra_slots, extra_scores = self._pending_scores(weights)
            slots = np.concatenate([slots, extra_slots])
            scores = np.concatenate([scores, extra_scores])
        keep = scores > 0
        slots, scores = slots[keep], scores[keep]
        if len(scores) > n:
            part = np.argpartition(-scores, n - 1)[:n]
            slots, scores = slots[part], scores[part]
        order = np.argsort(-scores, kind="stable")
        return slots[order], scores[order]

    def idf(self, term: str) -> float:
        """BM25 idf of a term; an unseen term gets the idf of a term in no document."""
        col = self._vocab.get(term)
        df = 0 if col is None else int(self._df[col])
        return float(self._idf(np.array([df], dtype=np.float64))[0])

    def document_frequency(self, term: str) -> int:
        """How many indexed documents contain `term`."""
        col = self._vocab.get(term)
        return 0 if col is None else int(self._df[col])

    # --- persistence -------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to an .npz file."""
        slots = np.fromiter(self._rows, dtype=np.int64, count=len(self._rows))
        rows = [self._rows[int(s)] for s in slots]
        lengths = np.array([len(r.cols) for r in rows], dtype=np.int64)
        vocab = np.array(sorted(self._vocab, key=self._vocab.__getitem__), dtype=np.str_)
        with path.open("wb") as fh:
            np.savez(
                fh,
                vocab=vocab,
                slots=slots,
                lengths=lengths,
                cols=np.concatenate([r.cols for r in rows]) if rows else np.zeros(0, np.int32),
                tf=np.concatenate([r.tf for r in rows]) if rows else np.zeros(0, np.float32),
                params=np.array([self.k1, self.b]),
            )

    @classmethod
    def load(cls, path: Path) -> KeywordIndex:
        """Read an index written by `save`."""
        with np.load(path, allow_pickle=False) as z:
            k1, b = (float(x) for x in z["params"])
            index = cls(k1, b)
            index._vocab = {str(t): i for i, t in enumerate(z["vocab"])}
            index._df = np.zeros(len(index._vocab), dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(z["lengths"])])
            cols_all, tf_all = z["cols"], z["tf"]
            for i, slot in enumerate(z["slots"]):
                cols = cols_all[offsets[i] : offsets[i + 1]].astype(np.int32)
                tf = tf_all[offsets[i] : offsets[i + 1]].astype(np.float32)
                row = _Row(cols, tf, float(tf.sum()))
                index._rows[int(slot)] = row
                index._total_length += row.length
                np.add.at(index._df, cols, 1)
        index.rebuild()
        return index

    # --- internals ---------------------------------------------------------------------------

    def _term_id(self, term: str) -> int:
        col = self._vocab.get(term)
        if col is None:
            col = len(self._vocab)
            self._vocab[term] = col
            if col >= len(self._df):
                grown = np.zeros(max(16, 2 * len(self._df)), dtype=np.int64)
                grown[: len(self._df)] = self._df
                self._df = grown
        return col

    def _mark_stale(self, slot: int) -> None:
        row = self._slot_row.get(slot)
        if row is not None:
            self._stale[row] = True

    def _maybe_rebuild(self) -> None:
        if len(self._pending) > max(_MIN_PENDING, _PENDING_SHARE * len(self._rows)):
            self.rebuild()

    def _avgdl(self) -> float:
        return self._total_length / len(self._rows) if self._rows else 1.0

    def _saturate(self, tf: np.ndarray, length: float, avgdl: float) -> np.ndarray:
        norm = self.k1 * (1.0 - self.b + self.b * length / avgdl)
        return (tf * (self.k1 + 1.0) / (tf + norm)).astype(np.float32)

    def _idf(self, df: np.ndarray) -> np.ndarray:
        n = len(self._rows)
        return np.log1p((n - df + 0.5) / (df + 0.5))

    def _query_weights(self, terms: Iterable[str]) -> dict[int, float]:
        counts = Counter(t for t in terms if t in self._vocab)
        cols = [self._vocab[t] for t in counts]
        if not cols:
            return {}
        idf = self._idf(self._df[np.array(cols)].astype(np.float64))
        # A repeated query term counts once more, not linearly: "卡 卡 卡" is not three times the
        # evidence.
        return {
            c: float(w) * (1.0 + np.log(q))
            for c, w, q in zip(cols, idf, counts.values(), strict=True)
        }

    def _matrix_scores(self, cols: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        known = cols < self._matrix.shape[1]
        if not known.any() or self._matrix.shape[0] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        sub = self._matrix[:, cols[known]]
        scores = np.asarray(sub @ w[known]).ravel()
        scores[self._stale] = 0.0
        hit = np.flatnonzero(scores)
        return self._matrix_slots[hit], scores[hit].astype(np.float32)

    def _pending_scores(self, weights: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
        avgdl = self._avgdl()
        slots, scores = [], []
        for slot in self._pending:
            row = self._rows[slot]
            sat = self._saturate(row.tf, row.length, avgdl)
            score = sum(
                float(s) * weights.get(int(c), 0.0) for c, s in zip(row.cols, sat, strict=True)
            )
            slots.append(slot)
            scores.append(score)
        return np.array(slots, dtype=np.int64), np.array(scores, dtype=np.float32)
