"""What the actions know about the current turn, and the shared project files they read.

The hub sends the customer context as message metadata (`bots/rasa_client.py`); the NLU
result and the conversation so far come from Rasa's tracker. Texts come from domain.yml and
skills from handoff.yml, the same files the embedded bot reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml
from rasa_sdk import Tracker

PROJECT_DIR = Path(os.environ.get("SERVICEHUB_RASA_PROJECT") or Path(__file__).resolve().parent.parent)
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
CHITCHAT = frozenset({"greet", "goodbye", "thanks", "affirm"})
NLU_FALLBACK = "nlu_fallback"
SUMMARY_QUESTIONS = 3
SUMMARY_QUESTION_CHARS = 120
MAX_QUERY_CHARS = 1000


@dataclass(frozen=True)
class Turn:
    """One customer message being answered: its text, the NLU verdict, the hub's context."""

    text: str
    conversation_id: str
    language: str
    verified: bool
    intent: str  # the best real intent; with low confidence Rasa says nlu_fallback instead
    confidence: float
    ranking: Tuple[Tuple[str, float], ...]
    fell_back: bool  # the FallbackClassifier replaced the intent with nlu_fallback
    metadata: Mapping[str, Any]

    @classmethod
    def read(cls, tracker: Tracker) -> "Turn":
        """Read the latest user message of `tracker`."""
        latest = tracker.latest_message or {}
        metadata = latest.get("metadata") or {}
        ranking = tuple(
            (str(item.get("name")), float(item.get("confidence") or 0.0))
            for item in latest.get("intent_ranking") or []
            if item.get("name") != NLU_FALLBACK
        )
        top = (latest.get("intent") or {}).get("name")
        best, confidence = ranking[0] if ranking else (str(top or NLU_FALLBACK), 0.0)
        return cls(
            text=str(latest.get("text") or "").strip()[:MAX_QUERY_CHARS],
            conversation_id=str(tracker.sender_id),
            language=language_of(tracker, metadata),
            verified=tracker.get_slot("verified") is True and metadata.get("verified") is True,
            intent=best,
            confidence=confidence,
            ranking=ranking,
            fell_back=top == NLU_FALLBACK,
            metadata=metadata,
        )

    def probability(self, intent: str) -> float:
        return next((p for name, p in self.ranking if name == intent), 0.0)

    @property
    def consecutive_misses(self) -> int:
        value = self.metadata.get("consecutive_misses")
        return value if isinstance(value, int) and value >= 0 else 0

    @property
    def topic(self) -> Optional[str]:
        value = self.metadata.get("topic")
        return value if isinstance(value, str) and value else None

    @property
    def turn_grant(self) -> str:
        return str(self.metadata.get("turn_grant") or "")

    @property
    def articles_shown(self) -> List[Dict[str, str]]:
        shown = []
        for item in self.metadata.get("articles_shown") or []:
            if isinstance(item, dict) and item.get("id"):
                shown.append({"id": str(item["id"]), "title": str(item.get("title") or "")})
        return shown


def language_of(tracker: Tracker, metadata: Mapping[str, Any]) -> str:
    """The reply language: the hub's choice for this message, else the slot, else Chinese."""
    for value in (metadata.get("language"), tracker.get_slot("language")):
        if value in LANGUAGES:
            return str(value)
    return DEFAULT_LANGUAGE


def summarize(tracker: Tracker) -> str:
    """List the customer's latest questions for the agent, chit-chat left out, oldest first."""
    questions: List[str] = []
    for event in tracker.events:
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        text = " ".join(str(event.get("text") or "").split())
        if text and intent not in CHITCHAT and text not in questions:
            questions.append(text)
    kept = questions[-SUMMARY_QUESTIONS:]
    return " / ".join(_clip(q) for q in kept)


def recent_questions(tracker: Tracker) -> str:
    """Join the customer's latest questions: what a "human please" is about."""
    return summarize(tracker).replace(" / ", " ")[-MAX_QUERY_CHARS:]


def _clip(text: str) -> str:
    if len(text) <= SUMMARY_QUESTION_CHARS:
        return text
    return text[: SUMMARY_QUESTION_CHARS - 1] + "…"


def render(domain: Mapping[str, Any], name: str, language: str, **values: Any) -> str:
    """Fill response `name` of the domain in `language`, as Rasa's conditional variations do."""
    variants = (domain.get("responses") or {}).get(name) or []
    chosen = None
    for variant in variants:
        conditions = variant.get("condition") or []
        if any(c.get("name") == "language" and c.get("value") == language for c in conditions):
            chosen = variant
            break
    if chosen is None:
        if not variants:
            raise KeyError(f"domain.yml has no response {name!r}")
        chosen = variants[0]
    return str(chosen.get("text") or "").format_map(_KeepMissing(values))


class _KeepMissing(Dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class HandoffRules:
    """handoff.yml: where handed-off conversations go and what the bot says on each reason."""

    intent_skills: Mapping[str, str]
    category_skills: Mapping[str, str]
    default_skill: str
    reason_responses: Mapping[str, str]

    def skill_for(self, *names: Optional[str]) -> str:
        """Return the first skill (other than the default) that an intent or category names."""
        for name in names:
            if not name:
                continue
            skill = self.intent_skills.get(name) or self.category_skills.get(name.lower())
            if skill and skill != self.default_skill:
                return skill
        return self.default_skill


@lru_cache(maxsize=1)
def handoff_rules() -> HandoffRules:
    """Read handoff.yml from the Rasa project (SERVICEHUB_RASA_PROJECT, else this checkout)."""
    path = PROJECT_DIR / "handoff.yml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return HandoffRules(
        intent_skills={str(k): str(v) for k, v in (raw.get("intent_skills") or {}).items()},
        category_skills={
            str(k).lower(): str(v) for k, v in (raw.get("category_skills") or {}).items()
        },
        default_skill=str(raw.get("default_skill") or "general"),
        reason_responses={
            str(reason): str(spec["response"])
            for reason, spec in (raw.get("handoff_reasons") or {}).items()
        },
    )
