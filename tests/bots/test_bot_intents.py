"""The intent classifier: hold-out accuracy, chit-chat set aside, the on-disk feature cache."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bots.intents import IntentClassifier, embed_features, segment_spans
from bots.project import RasaProject, load_nlu
from knowledge.embedding import (
    Embedder,
    SharedQueryEmbedder,
    shared_query_vectors,
    store_shared_query_vectors,
)
from tests.bots.conftest import HOLDOUT
from tests.conftest import SHARED_KB

MIN_HOLDOUT_ACCURACY = 0.9


class CountingEmbedder:
    """A real embedder that counts the texts it embeds."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.embedded = 0

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        return self.inner.embed_passages(texts)


def test_holdout_accuracy(classifier: IntentClassifier) -> None:
    holdout = load_nlu(HOLDOUT)
    texts = [t for texts in holdout.values() for t in texts]
    truth = [intent for intent, texts in holdout.items() for _ in texts]
    predicted = [p.intent for p in classifier.predict(texts)]
    correct = [p == t for p, t in zip(predicted, truth, strict=True)]
    accuracy = sum(correct) / len(correct)
    per_intent = Counter(t for t, ok in zip(truth, correct, strict=True) if ok)
    print(f"\nintent hold-out accuracy: {accuracy:.3f} ({sum(correct)}/{len(correct)})")
    for intent, examples in holdout.items():
        print(f"  {intent:14} {per_intent[intent]}/{len(examples)}")
    for text, p, t in zip(texts, predicted, truth, strict=True):
        if p != t:
            print(f"  missed: {text!r} expected {t}, got {p}")
    assert set(holdout) == set(classifier.labels)
    assert accuracy >= MIN_HOLDOUT_ACCURACY


def test_confidence_is_a_probability_over_all_intents(classifier: IntentClassifier) -> None:
    (prediction,) = classifier.predict(["信用卡年费怎么减免"])
    assert prediction.intent == "ask_kb"
    assert abs(sum(p for _, p in prediction.ranking) - 1.0) < 1e-6
    assert prediction.confidence == prediction.ranking[0][1] == prediction.probability("ask_kb")
    assert {name for name, _ in prediction.ranking} == set(classifier.labels)


def test_reading_sets_chitchat_aside(classifier: IntentClassifier) -> None:
    reading = classifier.read("hey, what does it cost to send money abroad? thanks")
    assert reading.content == "what does it cost to send money abroad"
    assert reading.prediction.intent == "ask_kb"
    assert reading.whole.intent == "ask_kb"

    only = classifier.read("好的，谢谢，再见")
    assert only.is_chitchat_only
    assert only.prediction.intent == "goodbye"

    plain = classifier.read("转账限额是多少")
    assert plain.content == "转账限额是多少" and plain.prediction is plain.whole


def test_texts_read_are_all_that_reading_a_message_embeds(
    project: RasaProject, embedders: list[Embedder], intent_cache: Path
) -> None:
    """What the bot embeds ahead, batched with other customers (bots/embedded.py), is all
    that `read` needs: it makes no model call of its own for these messages."""
    counting = [CountingEmbedder(e) for e in embedders]
    classifier = IntentClassifier.train(
        project.examples, [SharedQueryEmbedder(c) for c in counting], intent_cache
    )
    for message in ("转账限额是多少", "hi. what is the fee?   谢谢", "好的，谢谢，再见"):
        with shared_query_vectors():
            texts = classifier.texts_read(message)
            for model, inner in zip(counting, embedders, strict=True):
                for text in texts:
                    store_shared_query_vectors([model], text, list(inner.embed_queries([text])))
            before = [c.embedded for c in counting]
            classifier.read(message)
            assert [c.embedded for c in counting] == before, message
    assert classifier.texts_read("hi. what is the fee?   谢谢") == [
        "hi. what is the fee? 谢谢",
        "hi",
        "what is the fee",
        "谢谢",
    ]


def test_segments_keep_decimals_and_domains_whole() -> None:
    text = "hi. rate is 3.5% on amazon.com?? 好的，谢谢"
    assert [text[a:b] for a, b in segment_spans(text)] == [
        "hi",
        "rate is 3.5% on amazon.com",
        "好的",
        "谢谢",
    ]
    assert segment_spans("   ") == []


def test_example_embeddings_are_cached_by_examples_and_models(
    project: RasaProject, embedders: list[Embedder], tmp_path: Path
) -> None:
    counting = [CountingEmbedder(e) for e in embedders]
    examples = {
        intent: project.examples[intent][:8] for intent in ("greet", "ask_kb", "out_of_scope")
    }
    first = IntentClassifier.train(examples, counting, tmp_path)
    assert sum(c.embedded for c in counting) == 24 * len(counting)
    assert len(list(tmp_path.glob("intent-features-*.npy"))) == 1

    for c in counting:
        c.embedded = 0
    again = IntentClassifier.train(examples, counting, tmp_path)
    assert sum(c.embedded for c in counting) == 0
    assert again.predict(["hello"])[0].intent == first.predict(["hello"])[0].intent == "greet"

    for c in counting:
        c.embedded = 0
    changed = {**examples, "greet": (*examples["greet"], "good day to you")}
    (before,) = tmp_path.glob("intent-features-*.npy")
    IntentClassifier.train(changed, counting, tmp_path)
    assert sum(c.embedded for c in counting) == 25 * len(counting)
    (after,) = tmp_path.glob("intent-features-*.npy")  # the stale entry is gone
    assert after != before


def test_a_corrupt_cache_is_rebuilt(
    project: RasaProject, embedders: list[Embedder], tmp_path: Path
) -> None:
    examples = {intent: project.examples[intent][:5] for intent in ("greet", "thanks")}
    IntentClassifier.train(examples, embedders, tmp_path)
    (cache,) = tmp_path.glob("intent-features-*.npy")
    cache.write_bytes(b"not a numpy file")
    classifier = IntentClassifier.train(examples, embedders, tmp_path)
    assert classifier.predict(["thank you so much"])[0].intent == "thanks"
    assert np.load(cache).shape == (10, sum(e.dim for e in embedders))


def test_kb_dev_queries_read_as_finance_questions(classifier: IntentClassifier) -> None:
    # Customers' real phrasing from the KB evaluation set, never trained on: each labelled query
    # must reach the KB or the own-products flow, not chit-chat, a handoff or "out of scope".
    rows = [json.loads(line) for line in SHARED_KB.read_text(encoding="utf-8").splitlines()]
    texts = [r["text"] for r in rows if r.get("kind") == "query" and r.get("label")]
    intents = [p.intent for p in classifier.predict(texts)]
    finance = sum(i in {"ask_kb", "ask_holdings"} for i in intents) / len(intents)
    print(f"\nKB dev queries read as finance questions: {finance:.3f} of {len(intents)}")
    print(f"  by intent: {dict(Counter(intents))}")
    assert finance >= 0.95


def test_the_plain_array_scorer_matches_sklearn(classifier: IntentClassifier) -> None:
    # The hot path scores with the weights read out of sklearn's model; it must give sklearn's
    # own probabilities (to float32 rounding: sklearn keeps the features' dtype) on real message
    # features and on arbitrary rows alike.
    texts = ["信用卡年费怎么减免", "hi", "转人工", "how do I raise my transfer limit", "谢谢 再见"]
    real = embed_features(classifier._embedders, texts)
    noise = np.random.default_rng(7).normal(size=(50, real.shape[1])).astype(np.float32)
    for rows in (real, noise):
        expected = classifier._model.predict_proba(rows)
        got = classifier._scorer.predict_proba(rows)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_two_intents_are_scored_like_sklearn() -> None:
    # sklearn fits a single score for two classes and calibrates it as the pair (-d, d).
    rng = np.random.default_rng(3)
    features = rng.normal(size=(40, 8)).astype(np.float32)
    labels = ["greet" if row[0] > 0 else "goodbye" for row in features]
    two = IntentClassifier.fit(features, labels, [])
    probe = rng.normal(size=(20, 8)).astype(np.float32)
    np.testing.assert_allclose(
        two._scorer.predict_proba(probe), two._model.predict_proba(probe), rtol=1e-4, atol=1e-7
    )
    assert set(two.labels) == {"greet", "goodbye"}
