"""Hybrid KB search: dense vectors from several embedders fused with BM25, behind an answer gate."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from knowledge.aspects import ArticleAspects
from knowledge.embedding import Embedder, embed_queries_shared
from knowledge.gate import GateConfig, judge
from knowledge.index import MAX_VIEWS, SLOT_SHIFT, IndexStore, StoredArticle, VectorIndex
from knowledge.keyword import KeywordIndex
from knowledge.romanized import RomanizedVocabulary
from knowledge.text import (
    BIGRAM_PREFIX,
    CONCEPT_PREFIX,
    Analysis,
    Analyzer,
    article_views,
    normalize,
)
from knowledge.types import ArticleDoc, SearchHit, SearchResult

# Fusion weights (docs/knowledge-search.md has the measurements): the first dense model leads;
# further dense models and BM25 each count half. BM25 is strong on exact product names but blind
# to paraphrase and cross-language questions; USE is weaker than E5 on its own but its errors
# are different ones. Score fusion beat reciprocal-rank fusion on every set measured (dev R@1
# 0.96 against 0.90): ranks throw away how far ahead the best article is.
LEAD_WEIGHT = 1.0
SECOND_OPINION_WEIGHT = 0.5
KEYWORD_WEIGHT = 0.5
# Scores are standardised against each ranker's own top candidates before they are added.
NORMALISE_OVER = 20
CANDIDATES = 50
SNIPPET_CHARS = 160
# Scores within 0.5 % of a ranker's best count as tied for first place (identical views of two
# articles, e.g. the same title in both, score exactly alike).
TIE_TOLERANCE = 0.005
_SPACES = re.compile(r"\s+")
# An editor links two language versions of one answer with a tag "translation:<other id>" on
# either of them (an exact title/title_alt match links them too).
TRANSLATION_TAG = "translation:"
# Without a link, two articles in different languages are taken as one answer when each is the
# other's closest article in the other language by title (title and title_alt, the first dense
# model, query side) and that similarity reaches this floor. Measured (docs/knowledge-search.md):
# the 24 translation pairs of the demo KB score 0.956-1.000 with E5, while the closest
# unrelated articles that are each other's best match score at most 0.930 on the demo, dev,
# holdout and aspects KBs (a lost debit card and a lost credit card: 0.960, but neither is the
# other's best match). A model without a measured floor links by tag and title only.
TRANSLATION_MIN_TITLE_COSINE: dict[str, float] = {"e5-small-q4": 0.945}


@dataclass(frozen=True)
class SyncReport:
    """What `SearchEngine.sync` did."""

    embedded: int
    removed: int
    kept: int
    rebuilt: bool


@dataclass(frozen=True)
class _Entry:
    doc: ArticleDoc
    slot: int
    digest: str
    concepts: frozenset[int]
    terms: frozenset[str]

    @cached_property
    def titles(self) -> frozenset[str]:
        """The article's titles in both languages, normalised, for spotting translations."""
        return frozenset(normalize(t) for t in (self.doc.title, self.doc.title_alt) if t)

    @cached_property
    def links(self) -> frozenset[str]:
        """Ids of the articles an editor tagged as translations of this one."""
        n = len(TRANSLATION_TAG)
        return frozenset(
            t[n:].strip() for t in self.doc.tags if t.lower().startswith(TRANSLATION_TAG)
        )


class _ReadWriteLock:
    """Many concurrent readers or one writer; writers do not starve behind a stream of readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True)
class _Evidence:
    """What the gate checks an article against beyond similarity (derived from its text)."""

    # Concepts that count as covered: the article's own, minus body shorthand for its heading.
    subject: frozenset[int]
    aspects: ArticleAspects


@dataclass(frozen=True)
class _Prepared:
    """A document's analysed text and embeddings, computed outside any lock."""

    doc: ArticleDoc
    analysis: Analysis
    vectors: list[np.ndarray]
    evidence: _Evidence


class SearchEngine:
    """Persistent, searchable index of KB articles; safe for concurrent searches and updates."""

    def __init__(
        self,
        embedders: Sequence[Embedder],
        index_dir: Path | None,
        gate: GateConfig | None = None,
        analyzer: Analyzer | None = None,
    ) -> None:
        if not embedders:
            raise ValueError("SearchEngine needs at least one embedder")
        self.embedders = list(embedders)
        self.gate = gate or GateConfig()
        self.analyzer = analyzer or Analyzer()
        self._store = IndexStore(index_dir, self.embedders) if index_dir is not None else None
        self._lock = _ReadWriteLock()
        # Writers embed outside the read/write lock (slow), so they serialise on their own mutex
        # and take the write lock only to swap results in.
        self._writer = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._by_slot: dict[int, _Entry] = {}
        # Gate evidence per slot: derived with the embeddings for new articles, and on first use
        # for articles loaded from disk (only those that come out on top are ever checked, so a
        # restart does not re-analyse the whole KB). Concurrent readers may derive the same
        # entry twice; both results are equal and a dict store is atomic.
        self._evidence: dict[int, _Evidence] = {}
        # Similarity-based translation links, derived lazily from the title vectors and
        # dropped on every write (readers hold the read lock, so none is building it then).
        self._translation_table: _TranslationTable | None = None
        self._vectors = [VectorIndex(e.dim) for e in self.embedders]
        self._keywords = KeywordIndex()
        self._romanized = RomanizedVocabulary(
            self.analyzer.latin_words(),
            self.analyzer.function_words(),
            # Read at call time: loading a persisted index replaces the keyword index.
            lambda pair: self._keywords.document_frequency(BIGRAM_PREFIX + pair),
            self.analyzer.is_word,
        )
        self._next_slot = 0
        self._loaded = False
        self._started_empty = False  # the persisted index was missing or unusable

    def __len__(self) -> int:
        return len(self._entries)

    # --- writing -----------------------------------------------------------------------------

    def sync(
        self, docs: Iterable[ArticleDoc], progress: Callable[[int, int], None] | None = None
    ) -> SyncReport:
        """Make the index hold exactly `docs`, re-embedding only new or changed articles."""
        wanted = {doc.id: doc for doc in docs}
        with self._writer:
            self._ensure_loaded()
            rebuilt, self._started_empty = self._started_empty, False
            changed = [
                d
                for d in wanted.values()
                if d.id not in self._entries or self._entries[d.id].digest != d.content_hash()
            ]
            redated = [
                d
                for d in wanted.values()
                if d.id in self._entries and d not in changed and self._entries[d.id].doc != d
            ]
            vanished = [i for i in self._entries if i not in wanted]
            prepared = self._prepare(changed, progress)
            with self._lock.writing():
                for article_id in vanished:
                    self._remove_locked(article_id)
                for item in prepared:
                    self._upsert_locked(item, bulk=True)
                for doc in redated:
                    self._set_entry(replace(self._entries[doc.id], doc=doc))
                self._keywords.rebuild()
            kept = len(wanted) - len(changed)
            if changed or vanished or redated or rebuilt:
                self._save_locked()
            return SyncReport(len(changed), len(vanished), kept, rebuilt)

    def upsert(self, doc: ArticleDoc) -> None:
        """Add or replace one article live."""
        with self._writer:
            self._ensure_loaded()
            existing = self._entries.get(doc.id)
            if existing is not None and existing.digest == doc.content_hash():
                if existing.doc != doc:  # effective dates changed: no re-embedding needed
                    with self._lock.writing():
                        self._set_entry(replace(existing, doc=doc))
                return
            (item,) = self._prepare([doc], None)
            with self._lock.writing():
                self._upsert_locked(item)

    def remove(self, article_id: str) -> None:
        """Remove one article live (no-op when unknown)."""
        with self._writer:
            self._ensure_loaded()
            with self._lock.writing():
                self._remove_locked(article_id)

    def save(self) -> None:
        """Persist the index under `index_dir` (no-op without one)."""
        with self._writer:
            self._save_locked()

    # --- reading -----------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, now: datetime | None = None) -> SearchResult:
        """Rank effective articles for `query` and let the gate judge the best one."""
        moment = now or datetime.now(UTC)
        if not self._loaded:
            with self._writer:
                self._ensure_loaded()
        analysis = self.analyze_query(query)
        text = dense_query_text(query, analysis)
        vectors = [embed_queries_shared(e, [text])[0] for e in self.embedders]
        with self._lock.reading():
            return self._search_locked(query, analysis, vectors, k, moment)

    def analyze_query(self, query: str) -> Analysis:
        """The query as this engine reads it: normalised, abbreviations expanded, pinyin read
        against the KB's current words (`knowledge.romanized`), typos repaired (to lexicon
        terms or the KB's words)."""
        with self._lock.reading():
            return self.analyzer.analyze_query(query, self._romanized)

    def _search_locked(
        self, query: str, analysis: Analysis, vectors: list[np.ndarray], k: int, now: datetime
    ) -> SearchResult:
        if not self._entries:
            return SearchResult(query, (), False, 0.0, {"hits": 0.0})
        effective = _EffectiveFilter(now)
        dense = [self._dense_candidates(i, v, effective) for i, v in enumerate(vectors)]
        kw_slots, kw_scores = self._keywords.top(analysis.terms, CANDIDATES * 4)
        keyword = {
            int(s): float(x)
            for s, x in zip(kw_slots, kw_scores, strict=True)
            if effective(self._by_slot[int(s)].doc)
        }
        weights = [LEAD_WEIGHT] + [SECOND_OPINION_WEIGHT] * (len(dense) - 1) + [KEYWORD_WEIGHT]
        fused = _fuse([*dense, keyword], weights)
        ranked = sorted(fused, key=lambda s: -fused[s])[: max(k, 2)]
        signals = self._signals(analysis, dense, keyword, fused, ranked)
        names = [e.name for e in self.embedders]
        verdict = judge(signals, names, self.gate)
        hits = tuple(self._hit(s, fused[s]) for s in ranked[:k])
        return SearchResult(
            query, hits, verdict.answerable and bool(hits), verdict.confidence, signals
        )

    def _dense_candidates(
        self, model: int, vector: np.ndarray, effective: _EffectiveFilter
    ) -> dict[int, float]:
        """Best score per effective article (max over its views), best first."""
        index = self._vectors[model]
        n_vectors = min(index.ntotal, CANDIDATES * 8)
        while True:
            slots, scores = index.search(vector, n_vectors)
            kept: dict[int, float] = {}
            rejected: set[int] = set()
            for slot, score in zip(slots.tolist(), scores.tolist(), strict=True):
                if slot in kept or slot in rejected:
                    continue
                if not effective(self._by_slot[slot].doc):
                    rejected.add(slot)
                    continue
                kept[slot] = score
                if len(kept) >= CANDIDATES:
                    return kept
            if n_vectors >= index.ntotal:
                return kept
            n_vectors = min(index.ntotal, n_vectors * 4)  # many expired articles: look further

    def _signals(
        self,
        analysis: Analysis,
        dense: list[dict[int, float]],
        keyword: dict[int, float],
        fused: dict[int, float],
        ranked: list[int],
    ) -> dict[str, float]:
        signals: dict[str, float] = {"hits": float(len(ranked))}
        signals["query.english"] = float(analysis.lang == "en")
        if not ranked:
            return signals
        top = ranked[0]
        for embedder, scores in zip(self.embedders, dense, strict=True):
            order = sorted(scores, key=lambda s: -scores[s])
            cos = scores.get(top, 0.0)
            runner_up = next((scores[s] for s in order if s != top), 0.0)
            signals[f"{embedder.name}.cos"] = cos
            signals[f"{embedder.name}.margin"] = cos - runner_up
            signals[f"{embedder.name}.top"] = float(self._ranks_first(scores, top))
        signals["keyword.top"] = float(self._ranks_first(keyword, top))
        signals["keyword.score"] = keyword.get(top, 0.0)
        signals["rankers_agreeing"] = (
            sum(signals[f"{e.name}.top"] for e in self.embedders) + signals["keyword.top"]
        )
        signals["fused.score"] = fused[top]
        # The runner-up is the best article that is not the same answer in another language;
        # a lone candidate is as far ahead as it gets: the missing runner-up counts as average.
        second = max((x for s, x in fused.items() if not self._twins(s, top)), default=0.0)
        signals["fused.margin"] = fused[top] - second
        entry = self._by_slot[top]
        evidence = self._evidence_for(entry)
        query_entities = analysis.entities
        lexicon = self.analyzer.lexicon
        uncovered = [c for c in query_entities if not lexicon.covers(evidence.subject, c)]
        signals["query_entities"] = float(len(query_entities))
        signals["uncovered_entities"] = float(len(uncovered))
        signals["term_coverage"] = self._term_coverage(analysis, entry)
        unanswered = self.analyzer.aspects.unanswered(analysis.aspects, evidence.aspects)
        signals["asked_aspects"] = float(len(analysis.aspects))
        signals["unanswered_aspects"] = float(len(unanswered))
        for name in unanswered:
            signals[f"unanswered.{name}"] = 1.0
        return signals

    def _evidence_for(self, entry: _Entry) -> _Evidence:
        evidence = self._evidence.get(entry.slot)
        if evidence is None:
            evidence = _derive_evidence(self.analyzer, entry.doc, entry.concepts)
            self._evidence[entry.slot] = evidence
        return evidence

    def _ranks_first(self, scores: dict[int, float], slot: int) -> bool:
        """True when a ranker puts `slot` first, counting near-ties and translations as first."""
        if slot not in scores:
            return False
        leader = max(scores, key=lambda s: scores[s])
        best = scores[leader]
        return self._twins(leader, slot) or scores[slot] >= best - TIE_TOLERANCE * abs(best)

    def _twins(self, a: int, b: int) -> bool:
        """True for the same article, or two language versions of one answer.

        A bilingual KB often holds one answer in both languages: they are one answer for the
        gate, so neither their near-tie nor their order may count as doubt.
        """
        if a == b:
            return True
        one, other = self._by_slot[a], self._by_slot[b]
        if _linked(one, other):
            return True
        if one.doc.lang == other.doc.lang:
            return False
        return self._translations().partner(a) == b

    def _translations(self) -> _TranslationTable:
        """The title table for similarity links, built on first use after each write."""
        table = self._translation_table
        if table is None:
            table = _TranslationTable.build(
                self._vectors[0],
                self._by_slot,
                TRANSLATION_MIN_TITLE_COSINE.get(self.embedders[0].name),
            )
            self._translation_table = table
        return table

    def are_translations(self, one_id: str, other_id: str) -> bool:
        """True when two indexed articles are language versions of one answer (see `_twins`)."""
        with self._lock.reading():
            one, other = self._entries.get(one_id), self._entries.get(other_id)
            if one is None or other is None or one_id == other_id:
                return False
            return self._twins(one.slot, other.slot)

    def _term_coverage(self, analysis: Analysis, entry: _Entry) -> float:
        """Share of the query's idf mass (words and concepts, not bigrams) found in the article."""
        words = {t for t in analysis.terms if not t.startswith("~")}
        if not words:
            return 0.0
        total = covered = 0.0
        for term in words:
            weight = self._keywords.idf(term)
            total += weight
            if term in entry.terms:
                covered += weight
        return covered / total if total else 0.0

    def _hit(self, slot: int, score: float) -> SearchHit:
        doc = self._by_slot[slot].doc
        snippet = (
            doc.body if len(doc.body) <= SNIPPET_CHARS else doc.body[: SNIPPET_CHARS - 1] + "…"
        )
        return SearchHit(doc.id, doc.title, round(score, 6), snippet, doc.category, doc.lang)

    # --- internals ---------------------------------------------------------------------------

    def _prepare(
        self, docs: Sequence[ArticleDoc], progress: Callable[[int, int], None] | None
    ) -> list[_Prepared]:
        """Analyse and embed documents (no lock held: this is the slow part)."""
        out: list[_Prepared] = []
        total = len(docs)
        batch = 32
        for start in range(0, total, batch):
            chunk = docs[start : start + batch]
            views = [_views(d) for d in chunk]
            flat = [text for v in views for _, text in v]
            per_model = [
                _embed_views(e, [kind for v in views for kind, _ in v], flat)
                for e in self.embedders
            ]
            offset = 0
            for doc, doc_views in zip(chunk, views, strict=True):
                n = len(doc_views)
                vectors = [m[offset : offset + n] for m in per_model]
                offset += n
                analysis = self.analyzer.analyze_document(_document_text(doc))
                evidence = _derive_evidence(self.analyzer, doc, analysis.concepts)
                out.append(_Prepared(doc, analysis, vectors, evidence))
            if progress is not None:
                progress(min(start + batch, total), total)
        return out

    def _upsert_locked(self, item: _Prepared, bulk: bool = False) -> None:
        existing = self._entries.get(item.doc.id)
        if existing is not None:
            self._drop_vectors(existing.slot)
            self._romanized.remove(self._vocabulary(existing.terms))
            slot = existing.slot
        else:
            slot = self._next_slot
            self._next_slot += 1
        for index, vectors in zip(self._vectors, item.vectors, strict=True):
            index.add(slot, vectors)
        self._keywords.set(slot, item.analysis.terms, rebuild_when_due=not bulk)
        self._romanized.add(self._vocabulary(item.analysis.terms))
        terms = frozenset(t for t in item.analysis.terms if not t.startswith("~"))
        self._set_entry(
            _Entry(item.doc, slot, item.doc.content_hash(), item.analysis.concepts, terms)
        )
        self._evidence[slot] = item.evidence

    def _set_entry(self, entry: _Entry) -> None:
        entry.titles  # noqa: B018 - computed now, at write time, not during a search
        entry.links  # noqa: B018
        self._entries[entry.doc.id] = entry
        self._by_slot[entry.slot] = entry
        self._evidence.pop(entry.slot, None)
        self._translation_table = None

    def _remove_locked(self, article_id: str) -> None:
        entry = self._entries.pop(article_id, None)
        if entry is None:
            return
        del self._by_slot[entry.slot]
        self._evidence.pop(entry.slot, None)
        self._translation_table = None
        self._drop_vectors(entry.slot)
        self._keywords.remove(entry.slot)
        self._romanized.remove(self._vocabulary(entry.terms))

    def _vocabulary(self, terms: Iterable[str]) -> list[str]:
        """An article's words for reading pinyin: its keyword words and every name of its
        concepts (an article's 修改 is analysed as the concept 变更, yet xiugai must find it)."""
        names = self.analyzer.lexicon.names_of
        words: list[str] = []
        for term in terms:
            if term.startswith(CONCEPT_PREFIX):
                words.extend(names.get(term.removeprefix(CONCEPT_PREFIX), ()))
            elif not term.startswith(BIGRAM_PREFIX):
                words.append(term)
        return words

    def _drop_vectors(self, slot: int) -> None:
        for index in self._vectors:
            index.remove(slot)

    def _ensure_loaded(self) -> None:
        """Load the persisted index once, before the first read or write (writer mutex held)."""
        if not self._loaded:
            with self._lock.writing():
                self._started_empty = not self._load()

    def _load(self) -> bool:
        """Load the persisted index when present and compatible; False means start empty."""
        self._loaded = True
        if self._store is None:
            return True
        state = self._store.load()
        if state is None:
            return False
        self._vectors = state.vectors
        self._keywords = state.keywords
        self._next_slot = state.next_slot
        for stored in state.articles:
            terms = frozenset(stored.terms)
            self._romanized.add(self._vocabulary(terms))
            self._set_entry(
                _Entry(stored.doc, stored.slot, stored.digest, frozenset(stored.concepts), terms)
            )
        return True

    def _save_locked(self) -> None:
        if self._store is None:
            return
        with self._lock.reading():
            articles = [
                StoredArticle(e.doc, e.slot, e.digest, sorted(e.concepts), sorted(e.terms))
                for e in self._entries.values()
            ]
            self._store.save(articles, self._vectors, self._keywords, self._next_slot)


def _linked(one: _Entry, other: _Entry) -> bool:
    """True when an editor linked two articles as translations (by tag or by their titles)."""
    return (
        other.doc.id in one.links
        or one.doc.id in other.links
        or not one.titles.isdisjoint(other.titles)
    )


class _TranslationTable:
    """Each article's closest article in another language, by title similarity."""

    # All-pairs similarity of title vectors is quadratic: above this many title vectors the
    # table is not built and only editor links count (tag a large KB's translations).
    MAX_TITLE_VECTORS = 40_000
    BLOCK = 1024

    def __init__(self, best: dict[int, tuple[int, float]], floor: float | None) -> None:
        self._best = best
        self._floor = floor

    @classmethod
    def build(
        cls, index: VectorIndex, by_slot: dict[int, _Entry], floor: float | None
    ) -> _TranslationTable:
        if floor is None or len({e.doc.lang for e in by_slot.values()}) < 2:
            return cls({}, None)
        ids, vectors = index.all_vectors()
        slots, views = ids >> SLOT_SHIFT, ids & (MAX_VIEWS - 1)
        # View 0 is the title, view 1 the title in the other language when there is one.
        has_alt = np.array([bool(by_slot[int(s)].doc.title_alt) for s in slots], dtype=bool)
        keep = (views == 0) | ((views == 1) & has_alt)
        if int(keep.sum()) > cls.MAX_TITLE_VECTORS:
            return cls({}, None)
        slots, vectors = slots[keep], vectors[keep]
        langs = np.array([by_slot[int(s)].doc.lang for s in slots])
        best: dict[int, tuple[int, float]] = {}
        for lang in np.unique(langs):
            mine, theirs = langs == lang, langs != lang
            my_slots, my_vectors = slots[mine], vectors[mine]
            their_slots, their_vectors = slots[theirs], vectors[theirs]
            for start in range(0, len(my_slots), cls.BLOCK):
                rows = my_vectors[start : start + cls.BLOCK]
                row_slots = my_slots[start : start + cls.BLOCK]
                sims = rows @ their_vectors.T
                top = sims.argmax(axis=1)
                for slot, col, sim in zip(
                    row_slots.tolist(),
                    top.tolist(),
                    sims[np.arange(len(top)), top].tolist(),
                    strict=True,
                ):
                    if slot not in best or sim > best[slot][1]:
                        best[slot] = (int(their_slots[col]), float(sim))
        return cls(best, floor)

    def partner(self, slot: int) -> int | None:
        """The article that is this one's translation by similarity, if any."""
        if self._floor is None or slot not in self._best:
            return None
        other, sim = self._best[slot]
        if sim < self._floor or self._best.get(other, (None, 0.0))[0] != slot:
            return None
        return other


class _EffectiveFilter:
    """Compare effective dates whether they were stored with or without a time zone."""

    def __init__(self, now: datetime) -> None:
        self.aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        self.naive = self.aware.astimezone(UTC).replace(tzinfo=None)

    def __call__(self, doc: ArticleDoc) -> bool:
        edge = doc.effective_from or doc.effective_to
        if edge is None:
            return True
        return doc.is_effective(self.aware if edge.tzinfo is not None else self.naive)


def dense_query_text(query: str, analysis: Analysis) -> str:
    """The text the dense models embed for a query.

    The customer's words as written (width and spacing folded, case kept, as the bot's intent
    classifier embeds them, so one turn embeds one text) unless preparing the query changed more
    than case: then the repaired text (xyk → 信用卡, 理培 → 理赔), whose case is already folded.
    """
    plain = _SPACES.sub(" ", unicodedata.normalize("NFKC", query)).strip()
    return plain if plain.lower() == analysis.text else analysis.text


def _views(doc: ArticleDoc) -> list[tuple[str, str]]:
    return article_views(doc.title, doc.body, doc.title_alt, doc.questions, MAX_VIEWS)


def _embed_views(embedder: Embedder, kinds: list[str], texts: list[str]) -> np.ndarray:
    """Embed views; question-like views (titles, questions) use the query side of the model."""
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    short = [i for i, k in enumerate(kinds) if k != "chunk"]
    long = [i for i, k in enumerate(kinds) if k == "chunk"]
    if short:
        out[short] = embedder.embed_queries([texts[i] for i in short])
    if long:
        out[long] = embedder.embed_passages([texts[i] for i in long])
    return out


def _derive_evidence(analyzer: Analyzer, doc: ArticleDoc, concepts: frozenset[int]) -> _Evidence:
    """What the gate checks this article against, from its text and its analysed concepts."""
    lexicon = analyzer.lexicon
    subject = concepts
    # Shorthand needs an entity and a shorter-named one in the same article (rare): only then is
    # the heading worth analysing on its own.
    if any(not lexicon.shorthand_of.get(c, frozenset()).isdisjoint(concepts) for c in concepts):
        heading = analyzer.analyze_document(
            "\n".join(p for p in (doc.title, doc.title_alt or "", *doc.questions) if p)
        )
        subject = lexicon.subject_concepts(concepts, heading.concepts)
    return _Evidence(subject, analyzer.aspects.addressed(normalize(_document_text(doc))))


def _document_text(doc: ArticleDoc) -> str:
    parts = [doc.title, doc.title, doc.title_alt or "", *doc.questions, doc.body]
    return "\n".join(p for p in parts if p)


def _fuse(rankings: list[dict[int, float]], weights: list[float]) -> dict[int, float]:
    """Add standardised scores: each ranker's scores as z-scores over its own top candidates."""
    fused: dict[int, float] = {}
    for scores, weight in zip(rankings, weights, strict=True):
        if not scores:
            continue
        values = np.array(sorted(scores.values(), reverse=True)[:NORMALISE_OVER], dtype=np.float64)
        mean = float(values.mean())
        # One candidate (or all tied) has no spread: any positive score then counts as 1 sd.
        spread = float(values.std()) or max(abs(mean), 1e-6)
        for slot, score in scores.items():
            fused[slot] = fused.get(slot, 0.0) + weight * (score - mean) / spread
    # Articles a ranker did not return get nothing from it, which is below its average
    # candidate: that is the intended penalty for being found by one ranker only.
    return fused
