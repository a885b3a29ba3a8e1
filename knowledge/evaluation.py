"""Offline evaluation of KB search: retrieval quality and the answer gate on labelled queries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from knowledge.types import ArticleDoc, SearchResult


@dataclass(frozen=True)
class EvalQuery:
    """A customer query and the article that answers it (None: no article does)."""

    text: str
    label: str | None
    tag: str = ""
    qid: str = ""


@dataclass(frozen=True)
class QueryOutcome:
    """What the engine did with one evaluation query."""

    query: EvalQuery
    ranked: tuple[str, ...]
    answerable: bool
    confidence: float
    signals: dict[str, float]

    @property
    def rank(self) -> int | None:
        """1-based rank of the labelled article, None when absent or unlabelled."""
        if self.query.label is None or self.query.label not in self.ranked:
            return None
        return self.ranked.index(self.query.label) + 1

    @property
    def answered_correctly(self) -> bool:
        return self.answerable and self.rank == 1


@dataclass(frozen=True)
class Metrics:
    """Aggregate figures over a group of outcomes."""

    labelled: int
    unlabelled: int
    recall_at_1: float
    recall_at_3: float
    mrr: float
    gate_precision: float
    gate_coverage: float
    false_answer_rate: float


@dataclass(frozen=True)
class EvalReport:
    """Metrics overall and per tag, plus every outcome for inspection."""

    overall: Metrics
    by_tag: dict[str, Metrics]
    outcomes: list[QueryOutcome] = field(repr=False)

    def format(self) -> str:
        """Render the report as a printable table."""
        m = self.overall
        lines = [
            f"queries: {m.labelled} labelled, {m.unlabelled} without an answer",
            f"Recall@1 {m.recall_at_1:.3f}   Recall@3 {m.recall_at_3:.3f}   MRR {m.mrr:.3f}",
            f"gate: precision {m.gate_precision:.3f} at coverage {m.gate_coverage:.3f}; "
            f"false answers on unanswerable queries {m.false_answer_rate:.3f}",
        ]
        if self.by_tag:
            lines.append("")
            lines.append(
                f"{'tag':<14}{'n':>4}{'R@1':>7}{'R@3':>7}{'prec':>7}{'cover':>7}{'false':>7}"
            )
            for tag, t in sorted(self.by_tag.items()):
                lines.append(
                    f"{tag:<14}{t.labelled + t.unlabelled:>4}"
                    + "".join(
                        _cell(v, n)
                        for v, n in (
                            (t.recall_at_1, t.labelled),
                            (t.recall_at_3, t.labelled),
                            (t.gate_precision, t.labelled),
                            (t.gate_coverage, t.labelled),
                            (t.false_answer_rate, t.unlabelled),
                        )
                    )
                )
        return "\n".join(lines)


class _Searcher(Protocol):
    def search(self, query: str, k: int = 5) -> SearchResult: ...


def _cell(value: float, n: int) -> str:
    return f"{value:>7.2f}" if n else f"{'-':>7}"


def load_eval_file(path: Path | str) -> tuple[list[ArticleDoc], list[EvalQuery]]:
    """Read article and query lines from a JSONL evaluation file (other lines are ignored)."""
    docs: list[ArticleDoc] = []
    queries: list[EvalQuery] = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from exc
            if raw.get("kind") == "article":
                docs.append(_article(raw))
            elif raw.get("kind") == "query":
                label = raw.get("label")
                queries.append(
                    EvalQuery(
                        str(raw["text"]),
                        None if label is None else str(label),
                        str(raw.get("tag") or ""),
                        str(raw.get("qid") or ""),
                    )
                )
    return docs, queries


def load_merged(paths: Sequence[Path | str]) -> tuple[list[ArticleDoc], list[EvalQuery]]:
    """Load several evaluation files as one KB, applying their `relabel` lines.

    A query with no answer in its own KB may be answered by an article of another set once the
    KBs are merged; a line {"kind": "relabel", "set": <file stem>, "qid", "label"} in one file
    gives that query's label in the merged KB.
    """
    docs: list[ArticleDoc] = []
    queries: list[EvalQuery] = []
    relabels: dict[tuple[str, str], str | None] = {}
    for path in map(Path, paths):
        file_docs, file_queries = load_eval_file(path)
        docs.extend(file_docs)
        queries.extend(replace(q, qid=f"{path.stem}:{q.qid}") for q in file_queries)
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                raw = json.loads(line) if line.strip() else {}
                if raw.get("kind") == "relabel":
                    relabels[(str(raw["set"]), str(raw["qid"]))] = raw.get("label")
    ids = [d.id for d in docs]
    if len(ids) != len(set(ids)):
        raise ValueError("the evaluation files share article ids: they cannot be merged")
    merged = []
    for q in queries:
        stem, qid = q.qid.split(":", 1)
        label = relabels.get((stem, qid), q.label)
        merged.append(replace(q, label=label))
    return docs, merged


def _article(raw: dict[str, Any]) -> ArticleDoc:
    return ArticleDoc(
        id=str(raw["id"]),
        title=str(raw["title"]),
        body=str(raw["body"]),
        lang=str(raw.get("lang") or "zh"),
        category=str(raw.get("category") or ""),
        title_alt=raw.get("title_alt") or None,
        questions=tuple(str(q) for q in raw.get("questions") or ()),
        tags=tuple(str(t) for t in raw.get("tags") or ()),
    )


def evaluate(engine: _Searcher, queries: Sequence[EvalQuery], k: int = 5) -> EvalReport:
    """Run every query through the engine and compute retrieval and gate metrics."""
    outcomes = []
    for query in queries:
        result = engine.search(query.text, k=max(k, 3))
        outcomes.append(
            QueryOutcome(
                query,
                tuple(h.article_id for h in result.hits),
                result.answerable,
                result.confidence,
                dict(result.signals),
            )
        )
    return report_from_outcomes(outcomes)


def report_from_outcomes(outcomes: Sequence[QueryOutcome]) -> EvalReport:
    """Aggregate outcomes overall and per tag."""
    tags: dict[str, list[QueryOutcome]] = {}
    for outcome in outcomes:
        if outcome.query.tag:
            tags.setdefault(outcome.query.tag, []).append(outcome)
    return EvalReport(
        metrics(outcomes), {t: metrics(group) for t, group in tags.items()}, list(outcomes)
    )


def metrics(outcomes: Iterable[QueryOutcome]) -> Metrics:
    """Compute Recall@1/@3, MRR and gate figures for a group of outcomes."""
    items = list(outcomes)
    labelled = [o for o in items if o.query.label is not None]
    unlabelled = [o for o in items if o.query.label is None]
    ranks = [o.rank for o in labelled]
    answered = [o for o in labelled if o.answerable]
    return Metrics(
        labelled=len(labelled),
        unlabelled=len(unlabelled),
        recall_at_1=_share(sum(r == 1 for r in ranks), len(labelled)),
        recall_at_3=_share(sum(r is not None and r <= 3 for r in ranks), len(labelled)),
        mrr=_share(sum(1.0 / r for r in ranks if r is not None), len(labelled)),
        gate_precision=_share(sum(o.rank == 1 for o in answered), len(answered)),
        gate_coverage=_share(len(answered), len(labelled)),
        false_answer_rate=_share(sum(o.answerable for o in unlabelled), len(unlabelled)),
    )


def _share(count: float, total: int) -> float:
    return count / total if total else 0.0
