"""Answer-gate quality on the project's own labelled sets (docs/knowledge-search.md has figures).

The bounds are the project's targets, with the measured figures well inside them, so a change
that makes the gate answer near-misses again (or hand off answerable questions) fails here.
"""

from __future__ import annotations

from pathlib import Path

from knowledge.embedding import Embedder
from knowledge.evaluation import Metrics, evaluate, load_eval_file
from knowledge.search import SearchEngine

ASPECTS = Path(__file__).resolve().parents[1] / "data" / "kb-holdout-aspects.jsonl"


def _check(m: Metrics) -> None:
    assert m.gate_precision >= 0.95
    assert m.gate_coverage >= 0.80
    assert m.false_answer_rate <= 0.10


def test_holdout_set_meets_the_gate_targets(holdout_engine: SearchEngine) -> None:
    _, queries = load_eval_file(Path(__file__).resolve().parents[1] / "data" / "kb-holdout.jsonl")
    report = evaluate(holdout_engine, queries)
    _check(report.overall)
    # Same-product near-misses were answered 44 % of the time before the aspect check.
    assert report.by_tag["neg-near"].false_answer_rate <= 0.10


def test_aspects_set_meets_the_gate_targets(embedders: list[Embedder]) -> None:
    docs, queries = load_eval_file(ASPECTS)
    engine = SearchEngine(embedders, None)
    engine.sync(docs)
    report = evaluate(engine, queries)
    _check(report.overall)
    assert report.by_tag["neg-aspect"].false_answer_rate <= 0.10


def test_pinyin_queries_find_their_article_in_kbs_the_lexicon_does_not_know(
    embedders: list[Embedder],
) -> None:
    # Both blind sets' pinyin queries spell words of their own articles (跨境理财通, 征信异议 …),
    # not lexicon terms: before pinyin was read against the KB, R@1 was 0.42 and 0.17.
    data = Path(__file__).resolve().parents[1] / "data"
    for name in ("kb-blind.jsonl", "kb-blind2.jsonl"):
        docs, queries = load_eval_file(data / name)
        engine = SearchEngine(embedders, None)
        engine.sync(docs)
        pinyin = evaluate(engine, [q for q in queries if q.tag == "pinyin"]).overall
        assert pinyin.recall_at_1 >= 0.85, name
        assert pinyin.gate_precision >= 0.9, name


def test_sets_written_blind_keep_the_retrieval_and_precision_targets(
    embedders: list[Embedder],
) -> None:
    # Blind4-7 were each written by a helper who never saw the engine, and run once before
    # anything was changed for them (docs/knowledge-search.md). Their near-misses are still
    # answered too often, but what the bot does answer must stay right and findable, and
    # off-domain chatter is never answered.
    data = Path(__file__).resolve().parents[1] / "data"
    for name in ("kb-blind4.jsonl", "kb-blind5.jsonl", "kb-blind6.jsonl", "kb-blind7.jsonl"):
        docs, queries = load_eval_file(data / name)
        engine = SearchEngine(embedders, None)
        engine.sync(docs)
        report = evaluate(engine, queries)
        assert report.overall.recall_at_1 >= 0.90, name
        assert report.overall.gate_precision >= 0.95, name
        assert report.by_tag["neg-ood"].false_answer_rate == 0.0, name  # weather, recipes …
