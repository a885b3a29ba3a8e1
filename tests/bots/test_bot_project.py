"""The Rasa project files: valid Rasa 3.x shape, both languages everywhere, consistent maps."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from bots.project import RASA_DIR, ProjectError, RasaProject, load_nlu, load_project
from bots.replies import responses_needed
from hub.domain import Skill
from tests.bots.conftest import HOLDOUT
from tests.conftest import SHARED_KB

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def test_every_response_the_bot_uses_has_a_chinese_and_an_english_variant(
    project: RasaProject,
) -> None:
    needed = responses_needed(project)
    assert "utter_handoff_queue" in needed and "utter_kb_answer" in needed
    assert project.missing_variants(needed) == []


def test_a_missing_language_variant_is_reported(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    domain = yaml.safe_load((root / "domain.yml").read_text(encoding="utf-8"))
    domain["responses"]["utter_greet"] = [
        v for v in domain["responses"]["utter_greet"] if v["condition"][0]["value"] != "en"
    ]
    (root / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True), encoding="utf-8")
    assert load_project(root).missing_variants(["utter_greet"]) == ["utter_greet/en"]


def test_a_handoff_response_without_both_languages_fails_loading(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    domain = yaml.safe_load((root / "domain.yml").read_text(encoding="utf-8"))
    del domain["responses"]["utter_handoff_queue"][0]
    (root / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ProjectError, match="utter_handoff_queue/zh"):
        load_project(root)


def test_nlu_and_domain_intents_must_agree(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    domain = yaml.safe_load((root / "domain.yml").read_text(encoding="utf-8"))
    domain["intents"].remove("affirm")
    (root / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ProjectError, match="affirm"):
        load_project(root)


def test_files_are_rasa_3_format() -> None:
    nlu = yaml.safe_load((RASA_DIR / "data" / "nlu.yml").read_text(encoding="utf-8"))
    domain = yaml.safe_load((RASA_DIR / "domain.yml").read_text(encoding="utf-8"))
    assert nlu["version"] == domain["version"] == "3.1"
    for block in nlu["nlu"]:
        assert set(block) == {"intent", "examples"}
        assert all(line.startswith("- ") for line in block["examples"].splitlines())
    slots = domain["slots"]
    assert slots["language"]["type"] == "categorical"
    assert set(slots["language"]["values"]) == {"zh", "en"}
    assert slots["verified"]["type"] == "bool"
    for name, variants in domain["responses"].items():
        for variant in variants:
            (condition,) = variant["condition"]
            assert condition["type"] == "slot" and condition["name"] == "language", name


def test_every_intent_has_enough_examples_in_both_languages(project: RasaProject) -> None:
    for intent, examples in project.examples.items():
        chinese = [e for e in examples if CJK.search(e)]
        english = [e for e in examples if not CJK.search(e) and LATIN_WORD.search(e)]
        assert len(examples) >= 40, intent
        assert len(chinese) >= 15 and len(english) >= 15, intent


def test_training_data_holds_no_evaluation_text(project: RasaProject) -> None:
    training = {_fold(t) for texts in project.examples.values() for t in texts}
    holdout = {_fold(t) for texts in load_nlu(HOLDOUT).values() for t in texts}
    queries = {
        _fold(row["text"])
        for row in map(json.loads, SHARED_KB.read_text(encoding="utf-8").splitlines())
        if row.get("kind") == "query"
    }
    assert training & holdout == set()
    assert training & queries == set()


def test_handoff_maps_name_known_skills_and_intents(project: RasaProject) -> None:
    skills = {s.value for s in Skill}
    rules = project.handoff
    assert set(rules.intent_skills.values()) <= skills
    assert set(rules.category_skills.values()) <= skills
    assert rules.default_skill in skills
    assert set(rules.intent_skills) <= set(project.intents)
    assert project.skill_for_intent("ask_holdings") == "wealth"
    assert project.skill_for_category("Card") == "cards"
    assert project.skill_for_category("mortgage") == "loans"
    assert project.skill_for_category("unknown") is None


def test_render_fills_values_and_leaves_the_queue_position_for_the_router(
    project: RasaProject,
) -> None:
    answer = project.render("utter_kb_answer", "en", title="T", body="a {brace} body")
    assert answer == "From our article “T”:\na {brace} body"
    queue = project.render("utter_handoff_queue", "zh")
    assert "{position}" in queue and CJK.search(queue)
    assert not CJK.search(project.render("utter_handoff_queue", "en"))
    with pytest.raises(ProjectError):
        project.render("utter_nothing", "zh")


def test_nlu_reader_strips_entity_annotations(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: ask_kb\n  examples: |\n'
        '    - is my [visa](card_type) blocked\n    - 我的[信用卡]{"entity": "card"}\n'
        "- synonym: credit\n  examples: |\n    - credit card\n",
        encoding="utf-8",
    )
    assert load_nlu(path) == {"ask_kb": ("is my visa blocked", "我的信用卡")}


def _copy_project(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RASA_DIR, tmp_path / "rasa"))


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()
