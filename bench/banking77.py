"""Benchmark intent detection on BANKING77: the embedded bot's classifier and Rasa's DIET.

    ./dev bench banking77 [--quick] [--only embedded|rasa] [--epochs N] [--c C ...]

Prints test accuracy, training time and per-message latency of both bots next to the
published figures (../shared/datasets/banking77/README.md). Trains on train.csv only and
scores test.csv.

* The embedded bot: the hub's own code (`bots.intents`), i.e. the multilingual E5 and USE
  sentence embeddings concatenated, and a temperature-calibrated logistic regression. Training
  time is embedding the 10,003 training texts plus fitting. `--c` first compares values of C
  on a 10% validation split of train.csv (never the test set).
* Rasa: `rasa train nlu` in the Rasa environment (scripts/rasa-setup) with Rasa's recommended
  English pipeline (whitespace tokens, word and char n-gram counts, DIET), then a Rasa server
  answering `POST /model/parse` on loopback: latency is what the hub would see over HTTP.

How long it takes (measured on the shared two-core development machine while four other
jobs ran, so an idle machine is several times faster): embedding the 10,003 training texts with
E5 and USE ~24 min, fitting the calibrated regression ~15 min; DIET 100 epochs ~11 min (632 s with
the machine quieter), scoring test.csv over HTTP ~1 min. `--quick` trains DIET for 10 epochs
and scores 10 test messages per intent (a smoke run, ~20 min there). Embeddings are cached in
var/bench/banking77, so later runs skip the embedding (the first run's time is reported).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bots.intents import (  # noqa: E402
    REGULARISATION_C,
    IntentClassifier,
    embed_features,
    features_key,
    normalize,
)
from bots.rasa_server import RasaInstall, RasaSetupError, quiet_env  # noqa: E402
from knowledge.embedding import Embedder, default_embedders  # noqa: E402

DATA = REPO.parent / "shared" / "datasets" / "banking77"
CACHE = REPO / "var" / "bench" / "banking77"
LATENCY_SAMPLES = 300
QUICK_TEST_PER_INTENT = 10
DIET_EPOCHS = 100  # Rasa's default for DIET
QUICK_DIET_EPOCHS = 10
VALIDATION_SHARE = 0.1
PUBLISHED = (
    ("Casanueva et al. 2020, best (dual sentence encoders / fine-tuned BERT)", "~0.93"),
    ("later work (README)", "up to ~0.94"),
)
# Rasa's recommended English NLU pipeline (`rasa init`), entity extraction off: BANKING77 has
# no entities, and DIET's CRF head would only cost training time. Transformer layers: 0 as in
# the servicehub bot's own config.yml by default; `--diet-layers 2` is DIET's default.
RASA_CONFIG = """\
recipe: default.v1
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: {epochs}
    number_of_transformer_layers: {layers}
    constrain_similarities: true
    entity_recognition: false
    random_seed: 7
"""


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]


@dataclass(frozen=True)
class Result:
    name: str
    accuracy: float
    train_seconds: float
    latencies: list[float]
    note: str

    def row(self) -> str:
        ms = np.array(self.latencies) * 1000.0
        return (
            f"{self.name:38} {self.accuracy:8.4f} {self.train_seconds:9.0f} s "
            f"{np.percentile(ms, 50):8.1f} ms {np.percentile(ms, 99):8.1f} ms   {self.note}"
        )


def read_split(name: str) -> Split:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return Split([" ".join(r["text"].split()) for r in rows], [r["category"] for r in rows])


def subset(split: Split, per_label: int) -> Split:
    """The first `per_label` examples of each label, in file order."""
    taken: dict[str, int] = defaultdict(int)
    texts, labels = [], []
    for text, label in zip(split.texts, split.labels, strict=True):
        if taken[label] < per_label:
            taken[label] += 1
            texts.append(text)
            labels.append(label)
    return Split(texts, labels)


def accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


# --- the embedded bot's classifier -----------------------------------------------------------


def cached_features(
    embedders: Sequence[Embedder], texts: Sequence[str]
) -> tuple[np.ndarray, float]:
    """Embed `texts` as the classifier does; return (features, seconds spent embedding)."""
    normalized = [normalize(t) for t in texts]
    path = CACHE / f"features-{features_key(normalized, embedders)}.npy"
    if path.exists():
        return np.load(path), 0.0
    started = time.perf_counter()
    features = embed_features(embedders, normalized)
    seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, features)
    np.save(path.with_suffix(".seconds.npy"), np.array([seconds]))
    return features, seconds


def embedding_seconds(embedders: Sequence[Embedder], texts: Sequence[str]) -> float:
    """How long embedding `texts` took when they were cached (measured on that first run)."""
    normalized = [normalize(t) for t in texts]
    path = CACHE / f"features-{features_key(normalized, embedders)}.seconds.npy"
    return float(np.load(path)[0]) if path.exists() else float("nan")


def compare_c(features: np.ndarray, labels: list[str], values: Sequence[float]) -> float:
    """Score each C on a validation split of the training set; return the best."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(77)
    order = rng.permutation(len(labels))
    cut = int(len(labels) * (1 - VALIDATION_SHARE))
    fit, held = order[:cut], order[cut:]
    y = np.asarray(labels)
    best, best_score = values[0], -1.0
    for c in values:
        # Calibration never changes the top intent, so the plain regression scores the same.
        model = LogisticRegression(C=c, solver="newton-cg", max_iter=1000)
        model.fit(features[fit], y[fit])
        score = float((model.predict(features[held]) == y[held]).mean())
        print(f"  C={c:<6g} validation accuracy {score:.4f}", flush=True)
        if score > best_score:
            best, best_score = c, score
    return best


def bench_embedded(train: Split, test: Split, c_values: Sequence[float]) -> Result:
    embedders = default_embedders()
    names = " + ".join(e.name for e in embedders)
    print(f"embedded bot: embedding {len(train.texts)} training texts ({names})…", flush=True)
    features, _ = cached_features(embedders, train.texts)
    embed_seconds = embedding_seconds(embedders, train.texts)
    c = REGULARISATION_C
    if c_values:
        print("comparing C on 10% of train.csv:", flush=True)
        c = compare_c(features, train.labels, c_values)
    print(f"embedded bot: fitting the calibrated logistic regression (C={c:g})…", flush=True)
    started = time.perf_counter()
    classifier = IntentClassifier.fit(features, train.labels, embedders, c)
    fit_seconds = time.perf_counter() - started
    test_features, _ = cached_features(embedders, test.texts)
    # From cached features: the same computation as classifier.predict(test.texts).
    predicted = [p.intent for p in classifier.predict_features(test_features)]
    latencies = []
    for text in test.texts[:LATENCY_SAMPLES]:
        started = time.perf_counter()
        classifier.predict([text])
        latencies.append(time.perf_counter() - started)
    return Result(
        name="embedded (E5 + USE, logistic reg.)",
        accuracy=accuracy(predicted, test.labels),
        train_seconds=embed_seconds + fit_seconds,
        latencies=latencies,
        note=f"C={c:g}; embedding {embed_seconds:.0f} s + fit {fit_seconds:.0f} s; in-process",
    )


# --- Rasa's DIET -------------------------------------------------------------------------------


def write_rasa_nlu(train: Split, path: Path) -> None:
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(train.texts, train.labels, strict=True):
        by_label[label].append(text)
    lines = ['version: "3.1"', "nlu:"]
    for label, texts in sorted(by_label.items()):
        lines.append(f"  - intent: {label}")
        lines.append("    examples: |")
        lines.extend(f"      - {text}" for text in texts)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train_diet(
    install: RasaInstall, train: Split, work: Path, epochs: int, layers: int
) -> tuple[Path, float]:
    write_rasa_nlu(train, work / "nlu.yml")
    (work / "config.yml").write_text(
        RASA_CONFIG.format(epochs=epochs, layers=layers), encoding="utf-8"
    )
    command = [
        str(install.python),
        "-m",
        "rasa",
        "train",
        "nlu",
        "--config",
        "config.yml",
        "--nlu",
        "nlu.yml",
        "--out",
        "models",
        "--fixed-model-name",
        "banking77",
    ]
    print(
        f"Rasa: training DIET ({layers} transformer layers, {epochs} epochs; "
        f"log: {work / 'train.log'})…",
        flush=True,
    )
    env = quiet_env({"RASA_CACHE_DIRECTORY": str(work / ".cache")})
    started = time.perf_counter()
    with (work / "train.log").open("wb") as log:
        result = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    model = work / "models" / "banking77.tar.gz"
    if result.returncode != 0 or not model.exists():
        tail = (work / "train.log").read_text(errors="replace")[-3000:]
        raise RasaSetupError(f"rasa train nlu failed (exit {result.returncode}):\n{tail}")
    return model, seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_json(url: str, body: dict[str, Any], timeout: float = 30.0) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for_rasa(url: str, process: subprocess.Popen[bytes], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RasaSetupError(f"the Rasa server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/status?token=bench", timeout=2) as response:
                if json.loads(response.read()).get("model_file"):
                    return
        except (OSError, ValueError):
            pass
        time.sleep(1)
    raise RasaSetupError(f"the Rasa server did not answer within {timeout:.0f} s")


def score_diet(
    install: RasaInstall, model: Path, test: Split, work: Path
) -> tuple[float, list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(install.python),
        "-m",
        "rasa",
        "run",
        "--enable-api",
        "--auth-token",
        "bench",
        "--interface",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        str(model),
    ]
    print("Rasa: starting a server with the model to score test.csv…", flush=True)
    with (work / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=work,
            env=quiet_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_rasa(url, process)
            post_json(f"{url}/model/parse?token=bench", {"text": "warm up"})
            predicted, latencies = [], []
            for text in test.texts:
                started = time.perf_counter()
                parsed = post_json(f"{url}/model/parse?token=bench", {"text": text})
                latencies.append(time.perf_counter() - started)
                predicted.append(str((parsed.get("intent") or {}).get("name")))
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    return accuracy(predicted, test.labels), latencies


def bench_rasa(train: Split, test: Split, epochs: int, layers: int) -> Result:
    install = RasaInstall.locate().check()
    with tempfile.TemporaryDirectory(prefix="banking77-rasa-") as tmp:
        work = Path(tmp)
        model, train_seconds = train_diet(install, train, work, epochs, layers)
        print(f"Rasa: trained in {train_seconds:.0f} s", flush=True)
        score, latencies = score_diet(install, model, test, work)
    return Result(
        name="Rasa 3.6 DIET (word + char n-grams)",
        accuracy=score,
        train_seconds=train_seconds,
        latencies=latencies,
        note=f"{epochs} epochs, {layers} transformer layers; `rasa train nlu` wall time; over HTTP",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 DIET epochs, 770 test texts")
    parser.add_argument("--only", choices=("embedded", "rasa"), help="run one side only")
    parser.add_argument("--epochs", type=int, default=None, help="DIET epochs")
    parser.add_argument(
        "--diet-layers", type=int, default=0, help="DIET transformer layers (Rasa's default: 2)"
    )
    parser.add_argument(
        "--c", type=float, nargs="*", default=[], help="compare these C on a validation split"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train, test = read_split("train.csv"), read_split("test.csv")
    if args.quick:
        test = subset(test, QUICK_TEST_PER_INTENT)
    epochs = args.epochs or (QUICK_DIET_EPOCHS if args.quick else DIET_EPOCHS)
    print(
        f"BANKING77: {len(train.texts)} training texts, {len(test.texts)} test texts, "
        f"{len(set(train.labels))} intents; {os.cpu_count()} CPU cores",
        flush=True,
    )
    results = []
    if args.only != "rasa":
        results.append(bench_embedded(train, test, args.c))
    if args.only != "embedded":
        results.append(bench_rasa(train, test, epochs, args.diet_layers))
    print()
    print(f"{'':38} {'accuracy':>8} {'training':>11} {'p50':>11} {'p99':>11}")
    for result in results:
        print(result.row())
    for source, figure in PUBLISHED:
        print(f"{'published: ' + source:60} {figure}")
    if args.quick:
        print("(--quick: a subset of test.csv and few DIET epochs; not comparable to the paper)")


if __name__ == "__main__":
    main()
