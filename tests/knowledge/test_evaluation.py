"""Evaluation metrics on a tiny hand-made set, and the evaluation file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge.evaluation import EvalQuery, evaluate, load_eval_file, load_merged
from knowledge.types import SearchHit, SearchResult


class _Scripted:
    """Answers each query with a fixed ranking and verdict, so the metrics are known exactly."""

    def __init__(self, script: dict[str, tuple[list[str], bool]]) -> None:
        self.script = script

    def search(self, query: str, k: int = 5) -> SearchResult:
        ranked, answerable = self.script[query]
        hits = tuple(SearchHit(a, a, 1.0 / (i + 1), "", "", "zh") for i, a in enumerate(ranked))
        return SearchResult(query, hits[:k], answerable, 0.9 if answerable else 0.1, {})


def test_metrics_on_a_hand_made_set() -> None:
    engine = _Scripted(
        {
            "q1": (["a", "b", "c"], True),  # rank 1, answered: correct answer
            "q2": (["b", "a", "c"], True),  # rank 2, answered: wrong answer
            "q3": (["c", "b", "a"], False),  # rank 3, refused
            "q4": (["b", "c", "d"], False),  # label absent, refused
            "n1": (["a", "b", "c"], True),  # no answer exists, answered: false answer
            "n2": (["b", "a", "c"], False),  # no answer exists, refused
        }
    )
    queries = [
        EvalQuery("q1", "a", "easy"),
        EvalQuery("q2", "a", "hard"),
        EvalQuery("q3", "a", "hard"),
        EvalQuery("q4", "a", "hard"),
        EvalQuery("n1", None, "neg"),
        EvalQuery("n2", None, "neg"),
    ]
    report = evaluate(engine, queries)
    m = report.overall
    assert (m.labelled, m.unlabelled) == (4, 2)
    assert m.recall_at_1 == pytest.approx(1 / 4)
    assert m.recall_at_3 == pytest.approx(3 / 4)
    assert m.mrr == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert m.gate_coverage == pytest.approx(2 / 4)
    assert m.gate_precision == pytest.approx(1 / 2)
    assert m.false_answer_rate == pytest.approx(1 / 2)
    assert report.by_tag["hard"].recall_at_3 == pytest.approx(2 / 3)
    assert report.by_tag["neg"].false_answer_rate == pytest.approx(1 / 2)
    text = report.format()
    assert "Recall@1 0.250" in text and "hard" in text


def test_load_eval_file_reads_articles_and_queries_and_skips_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "kb.jsonl"
    lines = [
        {
            "kind": "article",
            "id": "x1",
            "title": "T",
            "body": "B",
            "lang": "zh",
            "category": "c",
            "questions": ["q?"],
        },
        {"kind": "query", "qid": "1", "text": "hello", "label": "x1", "tag": "t"},
        {"kind": "query", "text": "bye", "label": None},
        {"kind": "comment", "text": "ignored"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    docs, queries = load_eval_file(path)
    assert [d.id for d in docs] == ["x1"] and docs[0].questions == ("q?",)
    assert docs[0].title_alt is None
    assert [(q.text, q.label, q.tag) for q in queries] == [("hello", "x1", "t"), ("bye", None, "")]


def test_load_merged_applies_relabels_from_other_sets(tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    second = tmp_path / "second.jsonl"
    first.write_text(json.dumps({"kind": "query", "qid": "q9", "text": "gold?", "label": None}))
    second.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {
                    "kind": "article",
                    "id": "g",
                    "title": "Gold",
                    "body": "b",
                    "lang": "en",
                    "category": "w",
                },
                {"kind": "relabel", "set": "first", "qid": "q9", "label": "g"},
            ]
        )
    )
    docs, queries = load_merged([first, second])
    assert [d.id for d in docs] == ["g"]
    assert [(q.qid, q.label) for q in queries] == [("first:q9", "g")]
