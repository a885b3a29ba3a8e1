"""The embedded bot: Rasa-project intents and responses, answers only from the knowledge base.

Per message: classify (chit-chat set aside), then greet/thank/say goodbye, hand off when the
customer asks for a person or complains, search the KB for anything with content and answer
only when the search's calibrated gate passes, citing the article; otherwise hand off with a
skill taken from the article category or the intent. Every text comes from `domain.yml` in the
customer's language; the bot never composes an answer of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from bots import replies
from bots.base import BotReply
from bots.intents import CHITCHAT, IntentClassifier, Reading, normalize
from bots.project import RASA_DIR, ProjectError, RasaProject, load_project
from bots.topics import is_on_topic, summarize
from hub.domain import Author, CustomerContext, HandoffContext, Source
from hub.language import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES, detect_language
from knowledge.embedding import (
    Embedder,
    PassageCache,
    SharedQueryEmbedder,
    shared_query_vectors,
)
from knowledge.query_batching import QueryBatcher
from knowledge.service import KnowledgeBase
from knowledge.types import ArticleDoc, SearchResult

log = logging.getLogger(__name__)

T = TypeVar("T")

# Intent probabilities the policy acts on (the classifier is temperature-calibrated).
ACCEPT = 0.5  # below this the top intent is a guess: let the KB decide
ACT_DIRECTLY = 0.85  # a handoff intent this sure skips the KB attempt
CLEARLY_OFF_TOPIC = 0.8  # out_of_scope this sure is not searched (avoids far-fetched answers)
HOLDINGS_KB_FIRST = 0.15  # "my ..." questions that may be general rules: try the KB first
KB_LIKELY = 0.3  # enough of a finance question to hand off rather than say "not understood"
MISSES_BEFORE_HANDOFF = 2  # a third miss in a row goes to a person
SEARCH_K = 5
MAX_QUERY_CHARS = 1000  # the KB query; a pasted essay is cut, not refused
TOPIC_MESSAGES = 3  # recent customer messages that tell the conversation's topic
HANDOFF_INTENTS = {"request_human": "request_human", "complaint": "complaint"}
HOLDINGS = "ask_holdings"
ASK_KB = "ask_kb"
OUT_OF_SCOPE = "out_of_scope"
_WORD = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class _Turn:
    """One customer message being answered."""

    text: str
    language: str
    context: CustomerContext
    reading: Reading

    @property
    def query(self) -> str:
        return (self.reading.content or self.text)[:MAX_QUERY_CHARS]


@dataclass(frozen=True)
class _Brain:
    """What warm-up builds: the project files and the classifier trained on them."""

    project: RasaProject
    classifier: IntentClassifier
    chitchat: frozenset[str]


@dataclass(frozen=True)
class KbVerdict:
    """What the KB says about a question, as this bot acts on it (see `consult_kb`)."""

    answer: BotReply | None  # the cited answer, when the search gate passes
    result: SearchResult
    skill: str  # where a handoff about this question goes


class EmbeddedBot:
    """The in-process `Bot`: reads `bots/rasa/`, shares the hub's embedders and KB."""

    name = "embedded"

    def __init__(
        self,
        kb: KnowledgeBase,
        embedders: Sequence[Embedder],
        executor: Executor,
        cache_dir: Path | None,
        project_dir: Path = RASA_DIR,
        model_workers: int = 2,
    ) -> None:
        if not embedders:
            raise ValueError("EmbeddedBot needs the hub's embedders")
        self._kb = kb
        self._embedders = list(embedders)
        self._executor = executor
        self._cache_dir = cache_dir
        self._project_dir = project_dir
        self._brain: _Brain | None = None
        self._warming = asyncio.Lock()
        # Long articles are quoted by their sentences closest to the question: the query
        # vector is the turn's, the sentences' vectors are kept across turns.
        self._excerpts = SharedQueryEmbedder(self._embedders[0], PassageCache())
        # Concurrent turns' questions share model calls (knowledge/query_batching.py).
        self.questions = QueryBatcher(self._embedders, executor, workers=model_workers)

    async def warm_up(self) -> None:
        """Load the Rasa project and train the intent classifier (idempotent)."""
        await self._ready()

    async def respond(self, text: str, context: CustomerContext) -> BotReply:
        """Answer one customer message."""
        # The classifier and the KB search embed the same words: once per model and turn.
        with shared_query_vectors():
            return await self._respond(text, context)

    async def _respond(self, text: str, context: CustomerContext) -> BotReply:
        brain = await self._ready()
        clean = text.strip()
        language = _language(clean, context.language)
        if not _WORD.search(clean):  # empty, emoji or punctuation only: nothing to act on
            return self._say(brain, language, (replies.ASK_HOW_CAN_HELP,))
        # The models see this turn's texts together with other customers' (one call for all).
        await self.questions.prefill(brain.classifier.texts_read(clean))
        reading = await self._run(brain.classifier.read, clean)
        turn = _Turn(clean, language, context, reading)
        reply = await self._decide(brain, turn)
        log.debug(
            "bot %s: %r -> intent %s handoff %s",
            self.name,
            clean[:80],
            reply.intent,
            reply.handoff.reason if reply.handoff else None,
        )
        return reply

    async def consult_kb(
        self, question: str, language: str, topic: str | None = None, intent: str | None = None
    ) -> KbVerdict:
        """Search the KB as this bot does: the cited answer when the gate passes, and the skill.

        Other bots (Rasa, through the hub's bot API) use it so that every bot quotes, cites and
        routes exactly alike.
        """
        brain = await self._ready()
        query = question.strip()[:MAX_QUERY_CHARS]
        answer, result = await self._answer(brain, query, _language("", language))
        return KbVerdict(answer, result, self._route(brain, result, intent, topic))

    # --- policy --------------------------------------------------------------------------------

    async def _decide(self, brain: _Brain, turn: _Turn) -> BotReply:
        prediction = turn.reading.prediction
        intent, confidence = prediction.intent, prediction.confidence
        if intent in HANDOFF_INTENTS and confidence >= ACCEPT:
            if confidence < ACT_DIRECTLY:
                answered, _ = await self._try_answer(brain, turn)
                if answered is not None:
                    return answered
            return await self._handoff_for_intent(brain, turn)
        if turn.reading.is_chitchat_only:
            return self._chitchat(brain, turn)
        if intent == HOLDINGS and confidence >= ACCEPT:
            if prediction.probability(ASK_KB) >= HOLDINGS_KB_FIRST:
                answered, result = await self._try_answer(brain, turn)
                if answered is not None:
                    return answered
                return await self._holdings(brain, turn, result)
            return await self._holdings(brain, turn, None)
        if intent == OUT_OF_SCOPE and confidence >= CLEARLY_OFF_TOPIC:
            return await self._miss(brain, turn, replies.OUT_OF_SCOPE)
        answered, result = await self._try_answer(brain, turn)
        if answered is not None:
            return answered
        if intent == HOLDINGS:
            return await self._holdings(brain, turn, result)
        if intent == ASK_KB or prediction.probability(ASK_KB) >= KB_LIKELY:
            return await self._kb_no_answer(brain, turn, result)
        if intent == OUT_OF_SCOPE:
            return await self._miss(brain, turn, replies.OUT_OF_SCOPE)
        return await self._miss(brain, turn, replies.NOT_UNDERSTOOD)

    def _chitchat(self, brain: _Brain, turn: _Turn) -> BotReply:
        prediction = turn.reading.prediction
        response = replies.CHITCHAT_RESPONSES.get(prediction.intent, replies.ASK_HOW_CAN_HELP)
        return self._say(
            brain, turn.language, (response,), prediction.intent, prediction.confidence
        )

    async def _try_answer(self, brain: _Brain, turn: _Turn) -> tuple[BotReply | None, SearchResult]:
        """Answer from the KB when the gate passes; return the search result either way."""
        return await self._answer(brain, turn.query, turn.language)

    async def _answer(
        self, brain: _Brain, query: str, language: str
    ) -> tuple[BotReply | None, SearchResult]:
        result = await self._kb.search(query, k=SEARCH_K)
        if not result.answerable or result.best is None:
            return None, result
        doc = await self._article_to_quote(result, language)
        if doc is None:  # unpublished between search and fetch: treat as unanswered
            return None, result
        body = doc.body.strip()
        if len(body) > replies.FULL_BODY_CHARS:
            body = await self._run(replies.relevant_excerpt, body, query, self._excerpts)
        text = replies.article_answer(brain.project, doc, body, language)
        return (
            BotReply(
                texts=(text,),
                language=language,
                intent=ASK_KB,
                confidence=result.confidence,
                sources=(Source(doc.id, doc.title),),
                bot=self.name,
                topic=doc.category,
            ),
            result,
        )

    async def _kb_no_answer(self, brain: _Brain, turn: _Turn, result: SearchResult) -> BotReply:
        try:
            await self._kb.record_unanswered(
                turn.query, turn.language, turn.context.conversation_id, result
            )
        except Exception:  # losing a report for editors must not lose the customer's handoff
            log.exception("could not record an unanswered question")
        prediction = turn.reading.prediction
        return self._handoff(
            brain,
            turn,
            "kb_no_answer",
            self._skill(brain, turn, result, ASK_KB),
            ASK_KB,
            prediction.probability(ASK_KB),
            result,
        )

    async def _handoff_for_intent(self, brain: _Brain, turn: _Turn) -> BotReply:
        prediction = turn.reading.prediction
        reason = HANDOFF_INTENTS[prediction.intent]
        skill_intent = brain.project.skill_for_intent(prediction.intent)
        result = None
        if reason == "request_human":  # route by what the conversation is about
            result = await self._topic_search(brain, turn)
            skill = self._skill(brain, turn, result, None)
        else:
            skill = skill_intent or brain.project.handoff.default_skill
        return self._handoff(
            brain, turn, reason, skill, prediction.intent, prediction.confidence, result
        )

    async def _holdings(self, brain: _Brain, turn: _Turn, result: SearchResult | None) -> BotReply:
        """Questions about the customer's own products: verify first, then a person looks."""
        prediction = turn.reading.prediction
        if not turn.context.verified:
            # Never a word about accounts in an unverified chat, not even that one exists.
            return self._say(
                brain,
                turn.language,
                (replies.ASK_VERIFY,),
                HOLDINGS,
                prediction.probability(HOLDINGS),
            )
        if result is None:
            result = await self._kb.search(turn.query, k=SEARCH_K)
        return self._handoff(
            brain,
            turn,
            "needs_account_access",
            self._skill(brain, turn, result, HOLDINGS),
            HOLDINGS,
            prediction.probability(HOLDINGS),
            result,
        )

    async def _miss(self, brain: _Brain, turn: _Turn, response: str) -> BotReply:
        prediction = turn.reading.prediction
        if turn.context.consecutive_misses >= MISSES_BEFORE_HANDOFF:
            reply = self._handoff(
                brain,
                turn,
                "repeated_miss",
                self._skill(brain, turn, None, None),
                prediction.intent,
                prediction.confidence,
                None,
            )
            return replace(reply, missed=True)
        said = self._say(
            brain, turn.language, (response,), prediction.intent, prediction.confidence
        )
        return replace(said, missed=True)

    # --- building replies ------------------------------------------------------------------

    def _say(
        self,
        brain: _Brain,
        language: str,
        responses: Sequence[str],
        intent: str | None = None,
        confidence: float | None = None,
    ) -> BotReply:
        texts = tuple(brain.project.render(r, language) for r in responses)
        return BotReply(
            texts=texts, language=language, intent=intent, confidence=confidence, bot=self.name
        )

    def _handoff(
        self,
        brain: _Brain,
        turn: _Turn,
        reason: str,
        skill: str,
        intent: str | None,
        confidence: float | None,
        result: SearchResult | None,
    ) -> BotReply:
        rules = brain.project.handoff
        context = turn.context
        handoff = HandoffContext(
            reason=reason,
            skill=skill,
            intent=intent,
            confidence=confidence,
            articles_shown=context.articles_shown,
            summary=summarize(turn.text, context.previous_messages, brain.chitchat),
            bot=self.name,
            signals=dict(result.signals) if result is not None else {},
        )
        return BotReply(
            texts=(brain.project.render(rules.reason_responses[reason], turn.language),),
            language=turn.language,
            intent=intent,
            confidence=confidence,
            handoff=handoff,
            handoff_text=brain.project.render(rules.queue_response, turn.language),
            bot=self.name,
        )

    def _skill(
        self, brain: _Brain, turn: _Turn, result: SearchResult | None, intent: str | None
    ) -> str:
        """Route by the best hit's category when it is on topic, else by intent or topic."""
        return self._route(brain, result, intent, turn.context.topic)

    def _route(
        self, brain: _Brain, result: SearchResult | None, intent: str | None, topic: str | None
    ) -> str:
        project = brain.project
        default = project.handoff.default_skill
        best = result.best if result is not None else None
        if result is not None and best is not None and is_on_topic(result, self._kb.engine.gate):
            skill = project.skill_for_category(best.category)
            if skill:
                return skill
        for candidate in (
            project.skill_for_intent(intent),
            project.skill_for_category(topic),
            project.skill_for_intent(topic),
        ):
            if candidate and candidate != default:
                return candidate
        return default

    async def _topic_search(self, brain: _Brain, turn: _Turn) -> SearchResult:
        """Search what the customer has been asking about, to route a "human please"."""
        earlier = [
            text
            for author, text in turn.context.previous_messages
            if author == Author.CUSTOMER and normalize(text).lower() not in brain.chitchat
        ][-TOPIC_MESSAGES:]
        # "转人工" alone finds no topic, but "信用卡被盗刷了，转人工" does; the on-topic check
        # in `_skill` keeps a bare request from routing by a far-fetched hit.
        words = [*earlier, turn.reading.content]
        return await self._kb.search(" ".join(words)[-MAX_QUERY_CHARS:], k=SEARCH_K)

    # --- plumbing ----------------------------------------------------------------------------

    async def _ready(self) -> _Brain:
        if self._brain is not None:
            return self._brain
        async with self._warming:
            if self._brain is None:
                self._brain = await self._run(self._build)
                log.info("embedded bot ready: %d intents", len(self._brain.project.intents))
        return self._brain

    def _build(self) -> _Brain:
        project = load_project(self._project_dir)
        missing = project.missing_variants(replies.responses_needed(project))
        if missing:
            raise ProjectError(f"domain.yml lacks these response variants: {', '.join(missing)}")
        shared = [SharedQueryEmbedder(e) for e in self._embedders]
        classifier = IntentClassifier.train(project.examples, shared, self._cache_dir)
        chitchat = frozenset(
            normalize(t).lower() for intent in CHITCHAT for t in project.examples.get(intent, ())
        )
        return _Brain(project, classifier, chitchat)

    async def _article_to_quote(self, result: SearchResult, language: str) -> ArticleDoc | None:
        """Return the best hit's article, or its version in the customer's language if ranked."""
        assert result.best is not None
        best = await self._article(result.best.article_id)
        if best is None or best.lang == language:
            return best
        for hit in result.hits[1:]:
            if hit.lang == language:
                other = await self._article(hit.article_id)
                if other is not None and await self._run(
                    self._kb.engine.are_translations, best.id, other.id
                ):
                    return other
        return best

    async def _article(self, article_id: str) -> ArticleDoc | None:
        return await self._kb.get_doc(article_id)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # Carry the turn's context into the executor (shared query vectors), as asyncio.to_thread.
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


def _language(text: str, fallback: str) -> str:
    base = (fallback or DEFAULT_LANGUAGE)[:2].lower()
    language = detect_language(text, fallback=base) if text else base
    return language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE
