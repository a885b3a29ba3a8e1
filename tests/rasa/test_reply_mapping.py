"""Rasa's REST replies mapped onto the hub's `BotReply`: texts, buttons, custom payloads."""

from __future__ import annotations

from typing import Any

import pytest

from bots.project import RasaProject, load_project
from bots.rasa_client import RasaBadReply, reply_from_rasa
from hub.domain import CustomerContext, Source


@pytest.fixture(scope="module")
def project() -> RasaProject:
    return load_project()


def context(language: str = "en") -> CustomerContext:
    return CustomerContext(
        customer_id=1, conversation_id=7, channel="webchat", verified=False, language=language
    )


def test_texts_come_in_order_and_a_cited_answer_keeps_its_sources(project: RasaProject) -> None:
    messages = [
        {"recipient_id": "7", "text": "From our article “Lost cards”:\nCall us."},
        {
            "recipient_id": "7",
            "custom": {
                "intent": "ask_kb",
                "confidence": 0.91,
                "sources": [{"id": "kb-1", "title": "Lost cards"}],
                "topic": "card",
            },
        },
    ]
    reply = reply_from_rasa(messages, context(), project)
    assert reply.texts == ("From our article “Lost cards”:\nCall us.",)
    assert reply.sources == (Source("kb-1", "Lost cards"),)
    assert (reply.intent, reply.confidence, reply.topic) == ("ask_kb", 0.91, "card")
    assert reply.bot == "rasa" and reply.handoff is None and not reply.missed


def test_buttons_degrade_to_lines_under_their_text(project: RasaProject) -> None:
    messages = [
        {
            "text": "Which card?",
            "buttons": [{"title": "Debit", "payload": "/a"}, {"title": "Credit", "payload": "/b"}],
        },
        {"image": "https://bank.example/card.png"},
    ]
    reply = reply_from_rasa(messages, context(), project)
    assert reply.texts == ("Which card?\n• Debit\n• Credit", "https://bank.example/card.png")


def test_a_handoff_payload_becomes_the_handoff_context_and_the_queue_notice(
    project: RasaProject,
) -> None:
    messages: list[dict[str, Any]] = [
        {"text": "好的，马上为您转接人工客服。"},
        {
            "custom": {
                "intent": "request_human",
                "confidence": 0.97,
                "handoff": {
                    "reason": "request_human",
                    "skill": "cards",
                    "intent": "request_human",
                    "confidence": 0.97,
                    "articles_shown": [{"id": "kb-9", "title": "挂失"}],
                    "summary": "信用卡被盗刷了 / 转人工",
                    "signals": {"e5.cos": 0.81},
                },
            }
        },
    ]
    reply = reply_from_rasa(messages, context("zh"), project)
    assert reply.handoff is not None
    assert reply.handoff.skill == "cards" and reply.handoff.bot == "rasa"
    assert reply.handoff.articles_shown == (Source("kb-9", "挂失"),)
    assert reply.handoff.signals == {"e5.cos": 0.81}
    assert reply.handoff_text is not None and "{position}" in reply.handoff_text
    assert "排" in reply.handoff_text  # the Chinese queue notice, from domain.yml


def test_a_miss_is_flagged(project: RasaProject) -> None:
    messages = [{"text": "Sorry, that's outside…"}, {"custom": {"missed": True}}]
    assert reply_from_rasa(messages, context(), project).missed


@pytest.mark.parametrize(
    "messages",
    [
        [],  # what Rasa's REST channel returns when the action server is down
        [{"custom": {"intent": "ask_kb"}}],
        {"text": "not a list"},
        ["just a string"],
        [{"text": "hi"}, {"custom": {"handoff": {"reason": "complaint"}}}],  # no skill
        [{"text": "hi"}, {"custom": {"sources": [{"id": "kb-1"}]}}],  # no title
        [{"text": "hi"}, {"custom": "not an object"}],
        [{"text": "x"}, {"custom": {"handoff": {"reason": "a", "skill": "b", "signals": [1]}}}],
    ],
)
def test_unusable_replies_are_refused(project: RasaProject, messages: Any) -> None:
    with pytest.raises(RasaBadReply):
        reply_from_rasa(messages, context(), project)
