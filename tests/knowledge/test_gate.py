"""The answer gate's decision rule on hand-made signals."""

from __future__ import annotations

from knowledge.gate import GateConfig, judge

NAMES = ["e5-small-q4", "use-m3"]


def _signals(**overrides: float) -> dict[str, float]:
    base = {
        "hits": 5.0,
        "e5-small-q4.cos": 0.93,
        "use-m3.cos": 0.6,
        "rankers_agreeing": 3.0,
        "fused.margin": 2.0,
        "uncovered_entities": 0.0,
    }
    base.update(overrides)
    return base


def test_clear_evidence_is_answered_with_high_confidence() -> None:
    verdict = judge(_signals(), NAMES, GateConfig())
    assert verdict.answerable and verdict.confidence > 0.8 and not verdict.reasons


def test_each_failed_criterion_refuses_and_says_why() -> None:
    config = GateConfig()
    for signals, reason in [
        (_signals(uncovered_entities=1.0), "does not cover"),
        (_signals(rankers_agreeing=1.0), "disagree"),
        (_signals(**{"fused.margin": 0.2}), "lead"),
        (_signals(**{"e5-small-q4.cos": 0.85}), "similarity"),
        (
            _signals(unanswered_aspects=1.0, **{"unanswered.tax": 1.0}),
            "address what is asked (tax)",
        ),
    ]:
        verdict = judge(signals, NAMES, config)
        assert not verdict.answerable and verdict.confidence < 0.5
        assert any(reason in r for r in verdict.reasons)


def test_the_aspect_check_can_be_switched_off() -> None:
    signals = _signals(unanswered_aspects=2.0, **{"unanswered.fee": 1.0, "unanswered.time": 1.0})
    refused = judge(signals, NAMES, GateConfig())
    assert not refused.answerable
    assert any("(fee, time)" in r for r in refused.reasons)
    assert judge(signals, NAMES, GateConfig(require_aspect_coverage=False)).answerable


def test_confidence_is_one_half_at_the_border_and_monotone() -> None:
    config = GateConfig()
    at_border = judge(_signals(**{"e5-small-q4.cos": 0.88}), NAMES, config)
    above = judge(_signals(**{"e5-small-q4.cos": 0.90}), NAMES, config)
    assert abs(at_border.confidence - 0.5) < 1e-9 and at_border.answerable
    assert above.confidence > at_border.confidence


def test_unknown_embedders_have_no_cosine_floor() -> None:
    verdict = judge(
        {"hits": 1.0, "st-x.cos": 0.1, "rankers_agreeing": 2.0, "fused.margin": 1.0},
        ["st-x"],
        GateConfig(),
    )
    assert verdict.answerable


def test_no_hits_is_never_answerable() -> None:
    assert not judge({"hits": 0.0}, NAMES, GateConfig()).answerable


def test_an_english_question_has_its_own_e5_floor() -> None:
    # E5 scores English questions lower: 0.875 clears the English floor, not the Chinese one.
    config = GateConfig()
    chinese = judge(_signals(**{"e5-small-q4.cos": 0.875}), NAMES, config)
    english = judge(_signals(**{"e5-small-q4.cos": 0.875, "query.english": 1.0}), NAMES, config)
    assert not chinese.answerable and any("0.88" in r for r in chinese.reasons)
    assert english.answerable
    # Below the English floor, an English question is refused and told which floor.
    low = judge(_signals(**{"e5-small-q4.cos": 0.86, "query.english": 1.0}), NAMES, config)
    assert not low.answerable and any("0.87" in r for r in low.reasons)
    # A deployment can set the English floors itself (here: the same as the others).
    strict = GateConfig(min_cosine_english={})
    assert not judge(
        _signals(**{"e5-small-q4.cos": 0.875, "query.english": 1.0}), NAMES, strict
    ).answerable
