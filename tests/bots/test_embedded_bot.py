"""The embedded bot end to end: real models, a real KB over SQLite, the real Rasa project files."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from bots.base import BotReply
from bots.intents import IntentClassifier
from hub.domain import Source
from hub.storage.models import KbUnanswered
from knowledge.articles import ArticleInput
from knowledge.embedding import Embedder
from knowledge.search import SearchEngine
from tests.bots.conftest import BotWorld

pytestmark = pytest.mark.asyncio(loop_scope="session")


def said(world: BotWorld, response: str, language: str) -> str:
    return world.project.render(response, language)


def assert_no_handoff(reply: BotReply) -> None:
    assert reply.handoff is None and reply.handoff_text is None


@pytest.mark.parametrize(
    ("text", "language", "intent", "response"),
    [
        ("你好", "zh", "greet", "utter_greet"),
        ("hello there", "en", "greet", "utter_greet"),
        ("谢谢你啊", "zh", "thanks", "utter_thanks"),
        ("thanks a bunch", "en", "thanks", "utter_thanks"),
        ("拜拜啦", "zh", "goodbye", "utter_goodbye"),
        ("bye for now", "en", "goodbye", "utter_goodbye"),
        ("好的", "zh", "affirm", "utter_anything_else"),
        ("谢谢，再见", "zh", "goodbye", "utter_goodbye"),
    ],
)
async def test_chitchat_gets_its_response_in_the_customers_language(
    world: BotWorld,
    text: str,
    language: str,
    intent: str,
    response: str,
) -> None:
    # The context says the other language: the message's own language wins.
    other = "en" if language == "zh" else "zh"
    reply = await world.bot.respond(text, await world.context(other))
    assert reply.language == language
    assert reply.intent == intent
    assert reply.texts == (said(world, response, language),)
    assert not reply.sources and not reply.missed
    assert_no_handoff(reply)


async def test_chinese_kb_question_is_answered_from_the_cited_article(world: BotWorld) -> None:
    reply = await world.bot.respond("借记卡不见了要怎么挂失", await world.context("zh"))
    assert reply.sources == (Source("kb005", "借记卡挂失与补卡"),)
    (text,) = reply.texts
    assert "《借记卡挂失与补卡》" in text
    assert "临时挂失（口头挂失有效期5天）" in text  # the article body, not a paraphrase
    assert reply.intent == "ask_kb" and reply.language == "zh"
    assert_no_handoff(reply)


async def test_concurrent_turns_embed_their_questions_through_the_shared_batcher(
    world: BotWorld,
) -> None:
    questions = ["借记卡不见了要怎么挂失", "how do I raise my transfer limit", "你好"]
    batcher = world.bot.questions
    texts, batches = batcher.texts, batcher.batches
    context = await world.context("zh")
    replies = await asyncio.gather(*(world.bot.respond(q, context) for q in questions))
    assert batcher.texts == texts + len(questions)  # every question, once
    assert batches < batcher.batches <= batches + len(questions)
    assert replies[0].sources == (Source("kb005", "借记卡挂失与补卡"),)
    assert replies[1].sources and replies[2].intent == "greet"


async def test_english_kb_question_is_answered_from_the_english_article(world: BotWorld) -> None:
    reply = await world.bot.respond(
        "Are there charges when I pay in a foreign currency with my credit card?",
        await world.context("en"),
    )
    assert [s.id for s in reply.sources] == ["kb023"]
    (text,) = reply.texts
    assert text.startswith("From our article “Foreign transaction fees on credit cards”")
    assert "available in" not in text
    assert_no_handoff(reply)


async def test_english_question_on_a_chinese_article_says_so_and_quotes_it_untranslated(
    world: BotWorld,
) -> None:
    reply = await world.bot.respond(
        "how can I raise my credit card limit", await world.context("en")
    )
    assert [s.id for s in reply.sources] == ["kb016"]
    (text,) = reply.texts
    # The English title the editor gave, an honest note, and the Chinese body as written.
    assert "“Credit limit increase and temporary credit limit” is available in Chinese only" in text
    assert "信用卡持卡满6个月" in text
    assert reply.language == "en"


async def test_chinese_question_on_an_english_article_says_so(world: BotWorld) -> None:
    reply = await world.bot.respond("理财产品的冷静期是多久", await world.context("zh"))
    assert [s.id for s in reply.sources] == ["kb029"]
    (text,) = reply.texts
    assert "目前只有英文版" in text
    assert "cooling-off" in text.lower()


async def test_an_article_version_in_the_customers_language_is_preferred(
    world: BotWorld,
) -> None:
    english = ArticleInput(
        id="kb033-en",
        title="Change the beneficiary of an insurance policy",
        title_alt="变更保单受益人",
        body="To change the beneficiary, the policyholder brings their ID and the new "
        "beneficiary's ID to a branch or applies in the app under Insurance - Policy changes.",
        lang="en",
        category="insurance",
    )
    await world.kb.create(english, actor="test")
    try:
        reply = await world.bot.respond(
            "how do I change the beneficiary of my insurance policy", await world.context("en")
        )
    finally:
        await world.kb.delete("kb033-en")
    assert [s.id for s in reply.sources] == ["kb033-en"]
    (text,) = reply.texts
    assert text.startswith("From our article “Change the beneficiary of an insurance policy”")
    assert "available in" not in text


@pytest.mark.parametrize(
    ("text", "language", "article"),
    [
        ("hello! how can I get a higher limit on my credit card?", "en", "kb016"),
        ("你好，请问借记卡丢了怎么挂失？谢谢", "zh", "kb005"),
    ],
)
async def test_greeting_with_a_question_gets_the_answer(
    world: BotWorld, text: str, language: str, article: str
) -> None:
    reply = await world.bot.respond(text, await world.context(language))
    assert [s.id for s in reply.sources] == [article]
    assert reply.texts != (said(world, "utter_greet", language),)


@pytest.mark.parametrize(
    ("text", "language", "skill"),
    [
        ("汽车贷款的利率大概多少", "zh", "loans"),
        ("do you offer student loans", "en", None),
        ("理财赎回之后钱多久能到我卡上呢", "zh", "wealth"),
    ],
)
async def test_unanswerable_finance_question_is_handed_off_and_recorded(
    world: BotWorld, text: str, language: str, skill: str | None
) -> None:
    shown = (Source("kb016", "信用卡提额与临时额度"),)
    context = await world.context(language, articles_shown=shown, previous=(("customer", "你好"),))
    reply = await world.bot.respond(text, context)
    assert reply.handoff is not None, reply.texts
    assert reply.handoff.reason == "kb_no_answer"
    if skill is not None:
        assert reply.handoff.skill == skill
    assert reply.handoff.skill in {"wealth", "loans", "cards", "insurance", "securities", "general"}
    assert reply.handoff.articles_shown == shown
    assert reply.handoff.summary == text  # the greeting is not a question
    assert reply.handoff.signals  # the search evidence travels with the handoff
    assert not reply.sources
    assert reply.texts == (said(world, "utter_handoff_kb_no_answer", language),)
    assert reply.handoff_text == said(world, "utter_handoff_queue", language)
    assert "{position}" in reply.handoff_text
    async with world.database.read() as session:
        rows = (
            await session.scalars(
                select(KbUnanswered).where(KbUnanswered.conversation_id == context.conversation_id)
            )
        ).all()
    assert [(r.question, r.language) for r in rows] == [(text, language)]


@pytest.mark.parametrize(
    ("text", "language"), [("转人工", "zh"), ("human please", "en"), ("我要找真人客服", "zh")]
)
async def test_asking_for_a_person_hands_off(world: BotWorld, text: str, language: str) -> None:
    reply = await world.bot.respond(text, await world.context(language))
    assert reply.handoff is not None
    assert (reply.handoff.reason, reply.handoff.skill) == ("request_human", "general")
    assert reply.texts == (said(world, "utter_handoff_request_human", language),)
    assert reply.handoff_text == said(world, "utter_handoff_queue", language)


async def test_asking_for_a_person_routes_by_what_the_customer_asked_before(
    world: BotWorld,
) -> None:
    previous = (
        ("customer", "信用卡被人盗刷了好几笔"),
        ("bot", "这个问题我暂时没有找到准确的答案"),
    )
    reply = await world.bot.respond("转人工", await world.context("zh", previous=previous))
    assert reply.handoff is not None
    assert (reply.handoff.reason, reply.handoff.skill) == ("request_human", "cards")
    assert "信用卡被人盗刷了好几笔" in reply.handoff.summary


@pytest.mark.parametrize(
    ("text", "language", "apology"),
    [
        ("我要投诉", "zh", "抱歉"),
        ("I want to make a complaint about your branch staff", "en", "sorry"),
    ],
)
async def test_complaint_apologises_and_hands_off(
    world: BotWorld, text: str, language: str, apology: str
) -> None:
    reply = await world.bot.respond(text, await world.context(language))
    assert reply.handoff is not None
    assert (reply.handoff.reason, reply.handoff.skill) == ("complaint", "general")
    assert apology in reply.texts[0]
    assert reply.handoff_text == said(world, "utter_handoff_queue", language)


async def test_out_of_scope_says_so_then_hands_off_after_repeated_misses(world: BotWorld) -> None:
    first = await world.bot.respond("明天北京下雨吗", await world.context("zh"))
    assert first.texts == (said(world, "utter_out_of_scope", "zh"),)
    assert first.missed and first.intent == "out_of_scope"
    assert_no_handoff(first)

    english = await world.bot.respond(
        "tell me a joke about cats", await world.context("en", misses=1)
    )
    assert english.texts == (said(world, "utter_out_of_scope", "en"),)
    assert english.missed and english.handoff is None

    third = await world.bot.respond("给我讲个笑话吧", await world.context("zh", misses=2))
    assert third.missed
    assert third.handoff is not None
    assert (third.handoff.reason, third.handoff.skill) == ("repeated_miss", "general")
    assert third.texts == (said(world, "utter_handoff_repeated_miss", "zh"),)
    assert third.handoff_text == said(world, "utter_handoff_queue", "zh")


@pytest.mark.parametrize(
    ("text", "language"), [("我的理财什么时候到期", "zh"), ("when does my deposit mature", "en")]
)
async def test_own_products_ask_an_unverified_customer_to_verify_first(
    world: BotWorld, text: str, language: str
) -> None:
    reply = await world.bot.respond(text, await world.context(language, verified=False))
    assert reply.intent == "ask_holdings"
    assert reply.texts == (said(world, "utter_ask_verify", language),)
    assert not reply.sources
    assert_no_handoff(reply)


async def test_own_products_of_a_verified_customer_go_to_a_person(world: BotWorld) -> None:
    reply = await world.bot.respond(
        "我的理财什么时候到期", await world.context("zh", verified=True)
    )
    assert reply.handoff is not None
    assert (reply.handoff.reason, reply.handoff.skill) == ("needs_account_access", "wealth")
    assert reply.texts == (said(world, "utter_handoff_account_access", "zh"),)
    assert not reply.sources


@pytest.mark.parametrize("text", ["", "   \n ", "👍🙏", "？？？"])
async def test_nothing_to_read_gets_a_prompt(world: BotWorld, text: str) -> None:
    reply = await world.bot.respond(text, await world.context("en"))
    assert reply.texts == (said(world, "utter_ask_how_can_help", "en"),)
    assert not reply.missed
    assert_no_handoff(reply)


@pytest.mark.parametrize(
    "text",
    ["asdkjh qwe zxc", "啊" * 5000, "x7#kq " * 900, "余额" + "\x00\u200b" * 100],
)
async def test_junk_never_raises_and_never_answers(world: BotWorld, text: str) -> None:
    reply = await world.bot.respond(text, await world.context("zh"))
    assert reply.texts or reply.handoff_text
    assert not reply.sources


async def test_respond_keeps_model_work_off_the_event_loop(
    world: BotWorld, embedders: list[Embedder], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Record the thread of every model call (embedding, classifier, index search) rather than
    # time the loop: a busy CI machine makes any duration threshold flaky.
    loop_thread = threading.get_ident()
    calls: list[tuple[str, bool]] = []

    def watched(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.get_ident() == loop_thread))
            return fn(*args, **kwargs)

        return wrapper

    for embedder in embedders:
        for method in ("embed_queries", "embed_passages"):
            bound = getattr(embedder, method)
            monkeypatch.setattr(embedder, method, watched(f"{embedder.name}.{method}", bound))
    monkeypatch.setattr(
        IntentClassifier,
        "predict_features",
        watched("classify", IntentClassifier.predict_features),
    )
    monkeypatch.setattr(SearchEngine, "search", watched("search", SearchEngine.search))

    await world.bot.respond("你好，信用卡额度能不能调高一点", await world.context("zh"))
    await world.bot.respond("汽车贷款的利率大概多少", await world.context("zh"))

    assert {"classify", "search"} <= {name for name, _ in calls}, calls
    assert [name for name, on_loop in calls if on_loop] == []
