"""The Rasa project in `bots/rasa/`: NLU examples, responses and handoff maps both bots read."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hub.language import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES

RASA_DIR = Path(__file__).with_name("rasa")

# Rasa's inline entity annotations: "[text](entity)", "[text]{...}" and "[text](entity:value)".
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


class ProjectError(ValueError):
    """The Rasa project files are missing, malformed or inconsistent."""


@dataclass(frozen=True)
class ResponseVariant:
    """One text of a response; `language` is None when the variant has no language condition."""

    text: str
    language: str | None


@dataclass(frozen=True)
class HandoffRules:
    """Where handed-off conversations go and what the bot says when it hands off."""

    intent_skills: Mapping[str, str]
    category_skills: Mapping[str, str]
    default_skill: str
    reason_responses: Mapping[str, str]
    queue_response: str


@dataclass(frozen=True)
class RasaProject:
    """Everything the embedded bot needs from the Rasa project, validated at load."""

    examples: Mapping[str, tuple[str, ...]]
    responses: Mapping[str, tuple[ResponseVariant, ...]]
    handoff: HandoffRules

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(self.examples)

    def fingerprint(self) -> str:
        """Hash the training examples (what the intent classifier learns from)."""
        payload = json.dumps(
            sorted((intent, sorted(texts)) for intent, texts in self.examples.items()),
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def has_response(self, name: str, language: str) -> bool:
        """Tell whether `name` has a variant conditioned on exactly `language`."""
        return any(v.language == language for v in self.responses.get(name, ()))

    def missing_variants(self, names: Iterable[str]) -> list[str]:
        """List "response/language" pairs among `names` that have no text in that language."""
        return [
            f"{name}/{language}"
            for name in names
            for language in SUPPORTED_LANGUAGES
            if not self.has_response(name, language)
        ]

    def render(self, name: str, language: str, **values: object) -> str:
        """Fill response `name` in `language`, Rasa-style: `{key}` from `values`.

        Placeholders without a value (such as `{position}`, filled by the router) stay as
        they are, as Rasa leaves them.
        """
        variants = self.responses.get(name)
        if not variants:
            raise ProjectError(f"domain.yml has no response {name!r}")
        chosen = _pick(variants, language) or _pick(variants, DEFAULT_LANGUAGE) or variants[0]
        return chosen.text.format_map(_KeepMissing({k: str(v) for k, v in values.items()}))

    def skill_for_intent(self, intent: str | None) -> str | None:
        return self.handoff.intent_skills.get(intent) if intent else None

    def skill_for_category(self, category: str | None) -> str | None:
        return self.handoff.category_skills.get(category.lower()) if category else None


class _KeepMissing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _pick(variants: tuple[ResponseVariant, ...], language: str) -> ResponseVariant | None:
    exact = [v for v in variants if v.language == language]
    if exact:
        return exact[0]
    return next((v for v in variants if v.language is None), None)


def load_project(root: Path = RASA_DIR) -> RasaProject:
    """Read and cross-check `data/nlu.yml`, `domain.yml` and `handoff.yml` under `root`."""
    examples = load_nlu(root / "data" / "nlu.yml")
    domain = _read_yaml(root / "domain.yml")
    declared = [str(i) for i in domain.get("intents") or []]
    if set(declared) != set(examples):
        raise ProjectError(
            "domain.yml intents and nlu.yml intents differ: "
            f"only in domain {sorted(set(declared) - set(examples))}, "
            f"only in nlu {sorted(set(examples) - set(declared))}"
        )
    responses = _parse_responses(domain.get("responses") or {})
    handoff = _parse_handoff(_read_yaml(root / "handoff.yml"), set(examples))
    project = RasaProject(examples=examples, responses=responses, handoff=handoff)
    used = [*handoff.reason_responses.values(), handoff.queue_response]
    missing = project.missing_variants(used)
    if missing:
        raise ProjectError(f"domain.yml lacks these response variants: {', '.join(missing)}")
    return project


def load_nlu(path: Path) -> dict[str, tuple[str, ...]]:
    """Read a Rasa NLU file into intent -> example texts (entity annotations reduced to text)."""
    data = _read_yaml(path)
    out: dict[str, list[str]] = {}
    for block in data.get("nlu") or []:
        if not isinstance(block, dict) or "intent" not in block:
            continue  # synonyms, regexes and lookup tables are Rasa's business
        lines = str(block.get("examples") or "").splitlines()
        texts = [
            _ANNOTATION.sub(r"\1", line.strip()[2:]).strip()
            for line in lines
            if line.strip().startswith("- ")
        ]
        out.setdefault(str(block["intent"]), []).extend(t for t in texts if t)
    if not out:
        raise ProjectError(f"{path} has no intent examples")
    empty = [intent for intent, texts in out.items() if not texts]
    if empty:
        raise ProjectError(f"{path}: intents without examples: {', '.join(empty)}")
    return {intent: tuple(dict.fromkeys(texts)) for intent, texts in out.items()}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProjectError(f"missing Rasa project file {path}") from exc
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProjectError(f"{path} must hold a mapping at the top level")
    return data


def _parse_responses(raw: Mapping[str, Any]) -> dict[str, tuple[ResponseVariant, ...]]:
    responses: dict[str, tuple[ResponseVariant, ...]] = {}
    for name, variants in raw.items():
        parsed = []
        for variant in variants or []:
            if isinstance(variant, dict) and isinstance(variant.get("text"), str):
                parsed.append(ResponseVariant(variant["text"], _language_condition(variant)))
        responses[str(name)] = tuple(parsed)
    return responses


def _language_condition(variant: Mapping[str, Any]) -> str | None:
    """Return the value of a `language` slot condition, as Rasa's conditional variations say it."""
    for condition in variant.get("condition") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") == "slot"
            and condition.get("name") == "language"
        ):
            return str(condition.get("value"))
    return None


def _parse_handoff(raw: Mapping[str, Any], intents: set[str]) -> HandoffRules:
    intent_skills = {str(k): str(v) for k, v in (raw.get("intent_skills") or {}).items()}
    unknown = sorted(set(intent_skills) - intents)
    if unknown:
        raise ProjectError(f"handoff.yml maps intents that nlu.yml does not have: {unknown}")
    reasons = raw.get("handoff_reasons") or {}
    reason_responses = {}
    for reason, spec in reasons.items():
        if not isinstance(spec, dict) or "response" not in spec:
            raise ProjectError(f"handoff.yml: reason {reason!r} needs a `response`")
        reason_responses[str(reason)] = str(spec["response"])
    if "queue_response" not in raw:
        raise ProjectError("handoff.yml needs a `queue_response` (the text with {position})")
    return HandoffRules(
        intent_skills=intent_skills,
        category_skills={
            str(k).lower(): str(v) for k, v in (raw.get("category_skills") or {}).items()
        },
        default_skill=str(raw.get("default_skill", "general")),
        reason_responses=reason_responses,
        queue_response=str(raw["queue_response"]),
    )
