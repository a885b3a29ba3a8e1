"""Intent classification: the shared sentence embedders plus a calibrated logistic regression.

The embedders are the ones the KB search already holds in memory, so the bot adds no model of
its own. NLU examples are embedded once and cached on disk (keyed by the examples and the
embedders), so a restart only refits the small linear model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

from knowledge.embedding import Embedder

log = logging.getLogger(__name__)

CHITCHAT = frozenset({"greet", "goodbye", "thanks", "affirm"})
# Inverse regularisation strength; chosen by hold-out accuracy on the NLU data (C 4-64 score
# within a point; lower C underfits short chit-chat phrases).
REGULARISATION_C = 16.0
# Intent lives in the first sentences; longer input only costs embedding time.
MAX_CLASSIFIED_CHARS = 500
# Messages split into more pieces than this are read as a whole (pasted text, not chat).
MAX_SEGMENTS = 8
# A segment counts as chit-chat only when the classifier is at least this sure.
CHITCHAT_SEGMENT_CONFIDENCE = 0.5
FEATURES_VERSION = 1

_SPACES = re.compile(r"\s+")
# Sentence-ish pieces: Chinese and Latin clause punctuation; a period only before a space, so
# decimals and "amazon.com" stay whole.
_SEGMENT_BREAK = re.compile(r"[，,。！!？?；;\n~～]+|\.(?:\s+|$)")


@dataclass(frozen=True)
class IntentPrediction:
    """The classifier's verdict on one text: best intent, its probability, the full ranking."""

    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]

    def probability(self, intent: str) -> float:
        return next((p for name, p in self.ranking if name == intent), 0.0)


@dataclass(frozen=True)
class Reading:
    """What one message says: its intent once chit-chat is set aside, and that remaining text.

    `content` is the message without leading and trailing chit-chat ("hi, how do I ... thanks"
    → "how do I ..."); it is empty when the message is nothing but chit-chat.
    """

    text: str
    content: str
    whole: IntentPrediction
    prediction: IntentPrediction

    @property
    def is_chitchat_only(self) -> bool:
        return not self.content


class IntentClassifier:
    """Predicts intents with probabilities calibrated by temperature scaling."""

    def __init__(self, embedders: Sequence[Embedder], model: Any) -> None:
        self._embedders = list(embedders)
        self._model = model
        self.labels: tuple[str, ...] = tuple(str(c) for c in model.classes_)
        self._scorer = TemperatureScaledLinear.from_calibrated(model)

    @classmethod
    def train(
        cls,
        examples: Mapping[str, Sequence[str]],
        embedders: Sequence[Embedder],
        cache_dir: Path | None = None,
        c: float = REGULARISATION_C,
    ) -> IntentClassifier:
        """Fit on intent -> example texts; reuse cached example embeddings when present."""
        if not embedders:
            raise ValueError("the intent classifier needs at least one embedder")
        texts = [normalize(t) for intent in sorted(examples) for t in examples[intent]]
        labels = [intent for intent in sorted(examples) for _ in examples[intent]]
        smallest = min(len(v) for v in examples.values())
        if len(examples) < 2 or smallest < 2:
            raise ValueError("the intent classifier needs two intents with two examples each")
        features = _cached_features(texts, embedders, cache_dir)
        return cls.fit(features, labels, embedders, c)

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: Sequence[str],
        embedders: Sequence[Embedder],
        c: float = REGULARISATION_C,
    ) -> IntentClassifier:
        """Fit on rows of `embed_features(embedders, normalized texts)` and their labels."""
        smallest = min(Counter(labels).values())
        # Temperature scaling on out-of-fold predictions: one parameter, so it cannot overfit a
        # small NLU file, and it tames the overconfidence of a linear model on ~60 examples.
        # It never changes which intent ranks first, only how sure the bot says it is.
        model = CalibratedClassifierCV(
            LogisticRegression(C=c, solver="newton-cg", max_iter=1000),
            method="temperature",
            cv=min(5, smallest),
            ensemble=False,
        )
        model.fit(features, np.asarray(labels))
        return cls(embedders, model)

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Classify each text (blocking: call it from an executor)."""
        if not texts:
            return []
        return self.predict_features(embed_features(self._embedders, [normalize(t) for t in texts]))

    def predict_features(self, features: np.ndarray) -> list[IntentPrediction]:
        """Classify rows of already embedded, normalized texts."""
        probabilities = self._scorer.predict_proba(features)
        out = []
        for row in probabilities:
            order = np.argsort(-row)
            ranking = tuple((self.labels[i], float(row[i])) for i in order)
            out.append(IntentPrediction(ranking[0][0], ranking[0][1], ranking))
        return out

    def texts_read(self, text: str) -> list[str]:
        """The texts `read(text)` embeds (a partly chit-chat message may add one more)."""
        pieces = [text[a:b] for a, b in _classified_spans(text)]
        return [normalize(t) for t in (text, *pieces)]

    def read(self, text: str) -> Reading:
        """Classify a message and separate its chit-chat from its content (blocking)."""
        spans = _classified_spans(text)
        if not spans:
            (whole,) = self.predict([text])
            return Reading(text, "" if _is_chitchat(whole) else text, whole, whole)
        whole, *parts = self.predict([text, *(text[a:b] for a, b in spans)])
        substantive = [i for i, p in enumerate(parts) if not _is_chitchat(p)]
        if not substantive:  # "thanks, bye": answer the last thing said
            return Reading(text, "", whole, parts[-1])
        if len(substantive) == len(parts):
            return Reading(text, text, whole, whole)
        first, last = substantive[0], substantive[-1]
        content = text[spans[first][0] : spans[last][1]]
        prediction = parts[first] if first == last else self.predict([content])[0]
        return Reading(text, content, whole, prediction)


class TemperatureScaledLinear:
    """The fitted classifier as plain arrays: softmax(beta * (x @ W + b)).

    `CalibratedClassifierCV.predict_proba` validates its input and dispatches through several
    layers on every call; for one message that costs far more CPU (0.38 ms) than the arithmetic
    (0.01 ms), on the thread the embedding models need. The weights are read once after fitting;
    the test suite checks the result against sklearn's own `predict_proba`.
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray, beta: float) -> None:
        self.weights = np.ascontiguousarray(weights, dtype=np.float64)  # (features, classes)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.beta = float(beta)

    @classmethod
    def from_calibrated(cls, model: Any) -> TemperatureScaledLinear:
        """Read W, b and beta out of a fitted temperature-scaled, non-ensemble classifier."""
        (calibrated,) = model.calibrated_classifiers_
        if calibrated.method != "temperature":
            raise ValueError("expected a classifier calibrated by temperature scaling")
        estimator = calibrated.estimator
        weights, bias = estimator.coef_, estimator.intercept_
        if weights.shape[0] == 1:  # two intents: sklearn scores the pair as (-d, d)
            weights, bias = np.vstack([-weights, weights]), np.concatenate([-bias, bias])
        (calibrator,) = calibrated.calibrators
        return cls(weights.T, bias, float(calibrator.beta_))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per feature row, columns in `model.classes_` order."""
        logits = (np.asarray(features, dtype=np.float64) @ self.weights + self.bias) * self.beta
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits


def _classified_spans(text: str) -> list[tuple[int, int]]:
    """The clause-like pieces classified besides the whole message: none for a lone clause
    or for more than MAX_SEGMENTS pieces (then the message is read whole only)."""
    spans = segment_spans(text)
    return spans if 2 <= len(spans) <= MAX_SEGMENTS else []


def _is_chitchat(prediction: IntentPrediction) -> bool:
    return prediction.intent in CHITCHAT and prediction.confidence >= CHITCHAT_SEGMENT_CONFIDENCE


def normalize(text: str) -> str:
    """Fold full-width forms and spacing, and cut to what intent needs."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()[:MAX_CLASSIFIED_CHARS]


def segment_spans(text: str) -> list[tuple[int, int]]:
    """Return (start, end) of the clause-like pieces of a message, without the separators."""
    spans = []
    start = 0
    for match in _SEGMENT_BREAK.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    stripped = []
    for a, b in spans:
        piece = text[a:b]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            stripped.append((a + lead, a + len(piece.rstrip())))
    return stripped


def embed_features(embedders: Sequence[Embedder], texts: Sequence[str]) -> np.ndarray:
    """Concatenate each embedder's unit vectors, scaled so every row has unit length."""
    parts = [e.embed_queries(list(texts)) for e in embedders]
    return np.hstack(parts).astype(np.float32) / np.float32(np.sqrt(len(parts)))


def features_key(texts: Sequence[str], embedders: Sequence[Embedder]) -> str:
    """Name the cache entry for these texts embedded by these models."""
    payload = json.dumps(
        {
            "version": FEATURES_VERSION,
            "embedders": [[e.name, e.dim] for e in embedders],
            "texts": list(texts),
        },
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def _cached_features(
    texts: Sequence[str], embedders: Sequence[Embedder], cache_dir: Path | None
) -> np.ndarray:
    if cache_dir is None:
        return embed_features(embedders, texts)
    path = cache_dir / f"intent-features-{features_key(texts, embedders)}.npy"
    expected = (len(texts), sum(e.dim for e in embedders))
    try:
        cached = np.load(path, allow_pickle=False)
        if cached.shape == expected:
            return np.asarray(cached, dtype=np.float32)
        log.warning("ignoring intent feature cache %s with shape %s", path, cached.shape)
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        log.warning("intent feature cache %s is unreadable; re-embedding", path, exc_info=True)
    features = embed_features(embedders, texts)
    if _write_atomically(path, features):
        _remove_stale(cache_dir, keep=path)
    return features


def _write_atomically(path: Path, array: np.ndarray) -> bool:
    """Write the cache so a crash or a second hub process never leaves a torn file."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.replace(tmp, path)
        return True
    except OSError:
        # A read-only data dir costs start-up time, not correctness.
        log.warning("could not write intent feature cache %s", path, exc_info=True)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False


def _remove_stale(cache_dir: Path, keep: Path) -> None:
    """Drop features of earlier NLU versions so edits to nlu.yml do not pile up files."""
    for old in cache_dir.glob("intent-features-*.npy"):
        if old != keep:
            old.unlink(missing_ok=True)
