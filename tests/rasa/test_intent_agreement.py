"""The embedded bot's classifier and the trained Rasa model agree on held-out phrases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.intents import IntentClassifier
from bots.project import load_nlu, load_project
from bots.rasa_server import parse
from knowledge.embedding import Embedder
from tests.bots.conftest import HOLDOUT
from tests.rasa.conftest import RasaStack

AGREEMENT = Path(__file__).resolve().parents[1] / "bots" / "data" / "intent-agreement.yml"
NLU = Path(__file__).resolve().parents[2] / "bots" / "rasa" / "data" / "nlu.yml"
MIN_AGREEMENT = 0.9


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def test_agreement_phrases_are_held_out() -> None:
    phrases = load_nlu(AGREEMENT)
    seen = {_fold(t) for source in (NLU, HOLDOUT) for ts in load_nlu(source).values() for t in ts}
    leaked = [t for texts in phrases.values() for t in texts if _fold(t) in seen]
    assert leaked == []
    assert set(phrases) == set(load_project().intents)
    assert all(len(texts) >= 10 for texts in phrases.values())


@pytest.mark.rasa
@pytest.mark.timeout(1200)
async def test_the_embedded_bot_and_rasa_agree_on_intent(
    rasa_stack: RasaStack, embedders: list[Embedder], tmp_path: Path
) -> None:
    phrases = load_nlu(AGREEMENT)
    texts = [t for ts in phrases.values() for t in ts]
    labels = [intent for intent, ts in phrases.items() for _ in ts]
    classifier = await asyncio.to_thread(
        IntentClassifier.train, load_project().examples, embedders, tmp_path
    )
    embedded = [p.intent for p in await asyncio.to_thread(classifier.predict, texts)]
    rasa = [_best_intent(await asyncio.to_thread(parse, rasa_stack.config, t)) for t in texts]
    agree = [e == r for e, r in zip(embedded, rasa, strict=True)]
    agreement = sum(agree) / len(agree)

    def accuracy(predicted: list[str]) -> float:
        return sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)

    print(
        f"\nintent agreement, embedded vs Rasa: {agreement:.3f} ({sum(agree)}/{len(agree)}); "
        f"accuracy against the labels: embedded {accuracy(embedded):.3f}, "
        f"Rasa {accuracy(rasa):.3f}"
    )
    for text, e, r, ok in zip(texts, embedded, rasa, agree, strict=True):
        if not ok:
            print(f"  disagree: {text!r}: embedded {e}, Rasa {r}")
    assert agreement >= MIN_AGREEMENT


def _best_intent(parsed: dict[str, object]) -> str:
    """Rasa's best real intent: nlu_fallback only says the best one was not sure enough."""
    ranking = parsed.get("intent_ranking")
    assert isinstance(ranking, list) and ranking, parsed
    names = [str(item["name"]) for item in ranking if item["name"] != "nlu_fallback"]
    return names[0]
