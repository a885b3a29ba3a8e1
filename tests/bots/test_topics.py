"""Whether a KB hit names a question's product area (routing a handoff by skill)."""

from __future__ import annotations

from bots.topics import is_on_topic
from knowledge.gate import GateConfig
from knowledge.types import SearchHit, SearchResult


def _result(e5_cosine: float, **signals: float) -> SearchResult:
    hit = SearchHit("kb1", "信用卡年费", 1.0, "…", "card", "zh")
    return SearchResult(
        "q",
        (hit,),
        False,
        0.2,
        {"e5-small-q4.cos": e5_cosine, "use-m3.cos": 0.5, "e5-small-q4.top": 1.0, **signals},
    )


def test_a_hit_near_the_gates_floor_names_the_topic_and_english_has_its_own_floor() -> None:
    gate = GateConfig()  # E5 floors: 0.88, and 0.87 for a question in English
    # Routing accepts hits up to 0.05 below the answer floor.
    assert is_on_topic(_result(0.84), gate)
    assert not is_on_topic(_result(0.825), gate)
    # The same hit for an English question is measured against the English floor.
    assert is_on_topic(_result(0.825, **{"query.english": 1.0}), gate)
    assert not is_on_topic(_result(0.815, **{"query.english": 1.0}), gate)
