"""What a conversation is about: whether a KB hit names the topic, and the agent's summary."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bots.intents import normalize
from hub.domain import Author
from knowledge.gate import GateConfig
from knowledge.types import SearchResult

SUMMARY_QUESTIONS = 3
SUMMARY_QUESTION_CHARS = 120
# How far below the answer gate's cosine floor a hit may be and still tell the topic. The gate
# asks "does this article answer it?"; routing only asks "is it the same product area?".
# Measured on the KB dev set: with 0.05 the multilingual USE model separates near-miss finance
# questions (car loan -> mortgage article, cos >= 0.5) from chatter (weather, jokes: <= 0.3).
TOPIC_SLACK = 0.05
TOPIC_CONSENSUS_HITS = 3


def is_on_topic(result: SearchResult, gate: GateConfig) -> bool:
    """Tell whether the best hit is about the question's product area, though it may not answer.

    Every dense model must find the hit roughly as similar as the gate wants for an answer
    (for a question in English, the gate's English floors), and either one model ranks it
    first or the top hits all share its category.
    """
    best = result.best
    if best is None:
        return False
    signals = result.signals
    for name, floor in gate.floors(signals.get("query.english", 0.0) > 0).items():
        cosine = signals.get(f"{name}.cos")
        if cosine is not None and cosine < floor - TOPIC_SLACK:
            return False
    ranked_first = any(
        v > 0 for k, v in signals.items() if k.endswith(".top") and k != "keyword.top"
    )
    top = result.hits[:TOPIC_CONSENSUS_HITS]
    consensus = len(top) == TOPIC_CONSENSUS_HITS and all(h.category == best.category for h in top)
    return ranked_first or consensus


def summarize(text: str, previous: Sequence[tuple[str, str]], chitchat: Collection[str]) -> str:
    """List the customer's latest questions for the agent, oldest first, chit-chat left out."""
    asked = [t for author, t in previous if author == Author.CUSTOMER]
    if not asked or asked[-1].strip() != text.strip():
        asked.append(text)
    questions: list[str] = []
    for question in asked:
        clean = normalize(question)
        if clean and clean.lower() not in chitchat and clean not in questions:
            questions.append(clean)
    kept = questions[-SUMMARY_QUESTIONS:]
    return " / ".join(_clip(q) for q in kept)


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_QUESTION_CHARS else text[: SUMMARY_QUESTION_CHARS - 1] + "…"
