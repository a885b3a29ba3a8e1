"""Customers in web chat answered by a real Rasa server and action server, through the hub."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import asyncpg
import pytest

from bots.project import RasaProject, load_project
from bots.rasa_server import validate
from hub.identity_tokens import issue_identity_token
from tests.chat_client import ChatClient
from tests.conftest import IDENTITY_SECRET
from tests.rasa.conftest import RASA_TOKEN, RasaStack
from tests.rasa.helpers import (
    assert_nothing_lost,
    bots_that_answered,
    conversation,
    holdings_reads,
)

# Starting Rasa (TensorFlow, the model) and the hub takes minutes on a busy two-core machine.
pytestmark = [pytest.mark.rasa, pytest.mark.timeout(1200)]

SKILLS = {"wealth", "loans", "cards", "insurance", "securities", "general"}
TURN = 120.0  # seconds a turn may take on a busy machine (Rasa + actions + KB search)
C1001_WEALTH = {
    "海港理财·稳盈180天 第26期": ("2026-12-18", "8801195106049697"),
    "海港理财·睿享一年定开 第8期": ("2027-03-02", "8801855203183893"),
    "海港私行·多元配置18个月 第2期": ("2027-06-10", "8801368969670558"),
}


@pytest.fixture(scope="module")
def project() -> RasaProject:
    return load_project()


async def chat(stack: RasaStack, *texts: str, customer: str | None = None) -> list[Any]:
    """Send each text in turn; return the replies of each turn and the conversation id."""
    token = issue_identity_token(IDENTITY_SECRET, customer) if customer else None
    client = await ChatClient(stack.hub.base_url, token=token).connect()
    try:
        return [await client.ask(text, timeout=TURN) for text in texts]
    finally:
        await client.close()


async def test_a_kb_question_gets_rasa_s_answer_citing_the_article(rasa_stack: RasaStack) -> None:
    (replies,) = await chat(rasa_stack, "信用卡丢了怎么挂失")
    answer = replies[0]
    assert answer["author"] == "bot" and answer["handoff"] is False
    assert answer["sources"], answer
    assert answer["sources"][0]["title"] in answer["text"]
    assert "挂失" in answer["sources"][0]["title"]
    conversation_id = answer["conversation_id"]
    assert await bots_that_answered(rasa_stack.hub, conversation_id) == ["rasa"]
    await assert_nothing_lost(rasa_stack.hub, conversation_id)


async def test_an_english_question_gets_an_english_cited_answer(rasa_stack: RasaStack) -> None:
    (replies,) = await chat(rasa_stack, "how do I raise my transfer limit")
    answer = replies[0]
    assert answer["sources"] and answer["text"].startswith("From our article")
    assert await bots_that_answered(rasa_stack.hub, answer["conversation_id"]) == ["rasa"]


async def test_rasa_greets_in_the_language_the_hub_detected(
    rasa_stack: RasaStack, project: RasaProject
) -> None:
    english, chinese = await chat(rasa_stack, "hello there", "你好呀")
    assert english[0]["text"] == project.render("utter_greet", "en")
    assert chinese[0]["text"] == project.render("utter_greet", "zh")
    assert await bots_that_answered(rasa_stack.hub, english[0]["conversation_id"]) == [
        "rasa",
        "rasa",
    ]


async def test_an_unverified_customer_is_asked_to_verify_and_sees_no_account_data(
    rasa_stack: RasaStack, project: RasaProject
) -> None:
    (replies,) = await chat(rasa_stack, "我的理财什么时候到期？")
    assert [m["text"] for m in replies] == [project.render("utter_ask_verify", "zh")]
    said = " ".join(m["text"] for m in replies)
    for product, (maturity, account) in C1001_WEALTH.items():
        assert product not in said and maturity not in said and account[-4:] not in said
    conversation_id = replies[0]["conversation_id"]
    assert await bots_that_answered(rasa_stack.hub, conversation_id) == ["rasa"]
    assert await holdings_reads(rasa_stack.hub, conversation_id) == []


async def test_a_verified_customer_hears_their_wealth_products_maturity_dates(
    rasa_stack: RasaStack,
) -> None:
    (replies,) = await chat(rasa_stack, "我的理财什么时候到期？", customer="C1001")
    (answer,) = replies
    assert answer["author"] == "bot" and answer["handoff"] is False
    for product, (maturity, account) in C1001_WEALTH.items():
        assert product in answer["text"] and maturity in answer["text"]
        assert f"****{account[-4:]}" in answer["text"] and account not in answer["text"]
    assert "大额存单" not in answer["text"]  # a deposit: not what was asked
    conversation_id = answer["conversation_id"]
    assert await bots_that_answered(rasa_stack.hub, conversation_id) == ["rasa"]
    (audit,) = await holdings_reads(rasa_stack.hub, conversation_id)
    assert audit.actor == "service:rasa" and audit.details["kinds"] == ["wealth"]


async def test_asking_for_a_person_hands_off_with_the_conversation_s_context(
    rasa_stack: RasaStack,
) -> None:
    first, second = await chat(rasa_stack, "信用卡年费怎么免", "转人工")
    shown = first[0]["sources"]
    assert shown and first[0]["handoff"] is False
    notice = second[-1]
    assert notice["handoff"] is True and notice["author"] == "system"
    assert "{position}" not in notice["text"] and str(notice["queue_position"]) in notice["text"]
    found = await conversation(rasa_stack.hub, notice["conversation_id"])
    assert found.status == "queued" and found.skill in SKILLS
    context = found.handoff_context
    assert context is not None
    assert (context["bot"], context["reason"], context["intent"]) == (
        "rasa",
        "request_human",
        "request_human",
    )
    assert context["confidence"] > 0.5
    assert "信用卡年费怎么免" in context["summary"]
    assert [a["id"] for a in context["articles_shown"]] == [s["id"] for s in shown]
    assert found.skill == "cards"  # routed by what the customer asked about


async def test_a_complaint_is_handed_off_to_general(rasa_stack: RasaStack) -> None:
    (replies,) = await chat(rasa_stack, "你们的服务太差了，我要投诉")
    assert replies[0]["text"].startswith("非常抱歉")
    notice = replies[-1]
    assert notice["handoff"] is True
    found = await conversation(rasa_stack.hub, notice["conversation_id"])
    assert found.skill == "general"
    assert found.handoff_context is not None and found.handoff_context["reason"] == "complaint"


async def test_a_question_the_kb_cannot_answer_is_handed_off(rasa_stack: RasaStack) -> None:
    (replies,) = await chat(rasa_stack, "你们能帮我办理遗产继承的存款过户吗，需要公证书吗")
    notice = replies[-1]
    assert notice["handoff"] is True
    found = await conversation(rasa_stack.hub, notice["conversation_id"])
    assert found.handoff_context is not None
    assert found.handoff_context["reason"] == "kb_no_answer"
    assert found.handoff_context["signals"]  # the failed search, for the agent


async def test_off_topic_chatter_is_declined_twice_then_handed_off(
    rasa_stack: RasaStack, project: RasaProject
) -> None:
    turns = await chat(rasa_stack, "明天会下雨吗", "tell me a joke", "帮我订张去上海的机票")
    assert turns[0][0]["text"] == project.render("utter_out_of_scope", "zh")
    assert turns[1][0]["text"] == project.render("utter_out_of_scope", "en")
    assert not any(m["handoff"] for turn in turns[:2] for m in turn)
    notice = turns[2][-1]
    assert notice["handoff"] is True
    found = await conversation(rasa_stack.hub, notice["conversation_id"])
    assert found.handoff_context is not None
    assert found.handoff_context["reason"] == "repeated_miss"


async def test_rasa_s_webhook_refuses_callers_without_the_hub_s_token(
    rasa_stack: RasaStack,
) -> None:
    url = f"{rasa_stack.config.url}/webhooks/servicehub/webhook"
    body = {"sender": "1", "message": "我的理财什么时候到期", "metadata": {"verified": True}}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as response:
            assert response.status == 401
        headers = {"Authorization": "Bearer not-the-token-at-all"}
        async with session.post(url, json=body, headers=headers) as response:
            assert response.status == 403
        headers = {"Authorization": f"Bearer {RASA_TOKEN}"}
        async with session.get(
            f"{rasa_stack.config.url}/webhooks/servicehub/", headers=headers
        ) as r:
            assert r.status == 200  # the token opens it


async def test_conversations_are_kept_in_the_postgres_tracker_store(rasa_stack: RasaStack) -> None:
    (replies,) = await chat(rasa_stack, "大额存单多少钱起存")
    sender = str(replies[0]["conversation_id"])
    store = rasa_stack.tracker_database
    connection = await asyncpg.connect(
        host=store.host, port=store.port, user=store.user, database=store.database
    )
    try:
        texts = await connection.fetch(
            "SELECT data FROM events WHERE sender_id = $1 AND type_name = 'user'", sender
        )
    finally:
        await connection.close()
    assert [json.loads(row["data"])["text"] for row in texts] == ["大额存单多少钱起存"]


async def test_rasa_data_validate_passes(rasa_stack: RasaStack) -> None:
    result = await asyncio.to_thread(validate, rasa_stack.processes.install)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "No story structure conflicts found" in result.stdout
