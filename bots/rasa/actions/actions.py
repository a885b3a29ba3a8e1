"""The Rasa bot's custom actions: context from the hub, KB answers, holdings, handoffs.

The policy mirrors the embedded bot's (docs/bots.md): answer only what the hub's KB gate
passes, citing the article; tell a verified customer about their own products and ask
anyone else to verify first; hand off with a structured context otherwise. Replies that
need the hub's attention carry a custom payload the hub reads (`bots/rasa_client.py`):
`{"intent", "confidence", "sources", "topic", "missed", "handoff"}`.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.holdings import kinds_asked, render_holdings
from actions.hub_api import HubClient, HubRefused, HubUnavailable, KbAnswer
from actions.turn import Turn, handoff_rules, language_of, recent_questions, summarize

log = logging.getLogger(__name__)

# Intent probabilities the policy acts on; the same values as bots/embedded.py.
ACT_DIRECTLY = 0.85  # a handoff intent this sure skips the KB attempt
HOLDINGS_KB_FIRST = 0.15  # "my ..." questions that may be general rules: try the KB first
KB_LIKELY = 0.3  # enough of a finance question to hand off rather than say "not understood"
MISSES_BEFORE_HANDOFF = 2  # a third miss in a row goes to a person
ASK_KB = "ask_kb"
HOLDINGS = "ask_holdings"
OUT_OF_SCOPE = "out_of_scope"


class ActionReadContext(Action):
    """Set the slots from the hub's metadata; run at every turn by the custom slot mappings."""

    def name(self) -> Text:
        return "action_read_context"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        metadata = (tracker.latest_message or {}).get("metadata") or {}
        verified = metadata.get("verified") is True
        name = metadata.get("customer_name") if verified else None
        segment = metadata.get("segment")
        return [
            SlotSet("language", language_of(tracker, metadata)),
            SlotSet("verified", verified),
            SlotSet("segment", segment if isinstance(segment, str) else None),
            SlotSet("customer_name", name if isinstance(name, str) else None),
        ]


class ActionAnswerKb(Action):
    """Answer from the KB when the hub's gate passes; otherwise hand off or say so."""

    def name(self) -> Text:
        return "action_answer_kb"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        turn = Turn.read(tracker)
        finance = turn.intent == ASK_KB or turn.probability(ASK_KB) >= KB_LIKELY
        answer = await _ask_kb(turn, ASK_KB, record_unanswered=finance)
        if answer is not None and answer.answerable and answer.text:
            _say_answer(dispatcher, turn, answer)
            return []
        if finance or answer is None:
            skill = answer.skill if answer is not None else handoff_rules().skill_for(ASK_KB)
            signals = answer.signals if answer is not None else {}
            _hand_off(dispatcher, tracker, turn, "kb_no_answer", skill, ASK_KB, signals=signals)
            return []
        response = "utter_out_of_scope" if turn.intent == OUT_OF_SCOPE else "utter_default"
        _miss(dispatcher, tracker, turn, response)
        return []


class ActionAnswerHoldings(Action):
    """Tell a verified customer about their own products; ask anyone else to verify first."""

    def name(self) -> Text:
        return "action_answer_holdings"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        turn = Turn.read(tracker)
        payload = {"intent": HOLDINGS, "confidence": turn.probability(HOLDINGS)}
        if not turn.verified:
            # Never a word about accounts in an unverified chat, not even that one exists.
            dispatcher.utter_message(response="utter_ask_verify", json_message=payload)
            return []
        if turn.probability(ASK_KB) >= HOLDINGS_KB_FIRST:  # "我的房贷利率啥时候会降" is a rule
            answer = await _ask_kb(turn, HOLDINGS, record_unanswered=False)
            if answer is not None and answer.answerable and answer.text:
                _say_answer(dispatcher, turn, answer)
                return []
        kinds = kinds_asked(turn.text)
        client = HubClient.from_env()
        try:
            view = await client.holdings(turn.conversation_id, kinds, turn.turn_grant)
        except HubRefused as refusal:
            if refusal.code == "not_verified":
                dispatcher.utter_message(response="utter_ask_verify", json_message=payload)
                return []
            log.warning("hub refused holdings of conversation %s: %s", turn.conversation_id, refusal)
            return self._hand_off(dispatcher, tracker, turn)
        except HubUnavailable as error:
            log.warning("hub unavailable for holdings: %s", error)
            return self._hand_off(dispatcher, tracker, turn)
        text = render_holdings(domain, turn.language, kinds, view.items)
        dispatcher.utter_message(text=text, json_message=payload)
        return []

    @staticmethod
    def _hand_off(
        dispatcher: CollectingDispatcher, tracker: Tracker, turn: Turn
    ) -> List[EventType]:
        skill = handoff_rules().skill_for(HOLDINGS)
        _hand_off(dispatcher, tracker, turn, "needs_account_access", skill, HOLDINGS)
        return []


class ActionHandOff(Action):
    """Pass the customer to a person: they asked for one, or they complain."""

    def name(self) -> Text:
        return "action_hand_off"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        turn = Turn.read(tracker)
        reason = turn.intent if turn.intent in ("request_human", "complaint") else "request_human"
        if turn.confidence < ACT_DIRECTLY:
            # "My card was declined" can read as a complaint; a gated answer helps more.
            answer = await _ask_kb(turn, reason, record_unanswered=False)
            if answer is not None and answer.answerable and answer.text:
                _say_answer(dispatcher, turn, answer)
                return []
        rules = handoff_rules()
        skill = rules.skill_for(reason)
        signals: Dict[str, float] = {}
        if reason == "request_human":
            # Route by what the conversation is about ("信用卡被盗刷了，转人工" → cards).
            routed = await _ask_kb(
                turn, None, record_unanswered=False, question=recent_questions(tracker)
            )
            if routed is not None:
                skill, signals = routed.skill, routed.signals
        _hand_off(dispatcher, tracker, turn, reason, skill, reason, signals=signals)
        return []


class ActionOutOfScope(Action):
    """Say what the bot can help with; the third miss in a row hands off."""

    def name(self) -> Text:
        return "action_out_of_scope"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        _miss(dispatcher, tracker, Turn.read(tracker), "utter_out_of_scope")
        return []


class ActionDefaultFallback(Action):
    """Rasa's core fallback: say the message was not understood (a miss)."""

    def name(self) -> Text:
        return "action_default_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        _miss(dispatcher, tracker, Turn.read(tracker), "utter_default")
        return []


async def _ask_kb(
    turn: Turn,
    intent: Optional[str],
    *,
    record_unanswered: bool,
    question: Optional[str] = None,
) -> Optional[KbAnswer]:
    """Ask the hub's KB; None when the hub cannot be reached in time."""
    try:
        return await HubClient.from_env().kb_answer(
            question or turn.text,
            turn.conversation_id,
            turn.language,
            intent,
            record_unanswered,
        )
    except (HubUnavailable, HubRefused) as error:
        log.warning("KB answer for conversation %s failed: %s", turn.conversation_id, error)
        return None


def _say_answer(dispatcher: CollectingDispatcher, turn: Turn, answer: KbAnswer) -> None:
    dispatcher.utter_message(
        text=answer.text,
        json_message={
            "intent": ASK_KB,
            "confidence": answer.confidence,
            "sources": list(answer.sources),
            "topic": answer.topic,
        },
    )


def _miss(dispatcher: CollectingDispatcher, tracker: Tracker, turn: Turn, response: str) -> None:
    """Say `response` and flag the miss, or hand off when the customer keeps being missed."""
    if turn.consecutive_misses >= MISSES_BEFORE_HANDOFF:
        skill = handoff_rules().skill_for(turn.topic)
        _hand_off(dispatcher, tracker, turn, "repeated_miss", skill, turn.intent, missed=True)
        return
    dispatcher.utter_message(
        response=response,
        json_message={"intent": turn.intent, "confidence": turn.confidence, "missed": True},
    )


def _hand_off(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    turn: Turn,
    reason: str,
    skill: str,
    intent: Optional[str],
    *,
    signals: Optional[Dict[str, float]] = None,
    missed: bool = False,
) -> None:
    """Say the reason's response, then give the hub the handoff context as a custom payload."""
    confidence = turn.probability(intent) if intent else turn.confidence
    dispatcher.utter_message(response=handoff_rules().reason_responses[reason])
    dispatcher.utter_message(
        json_message={
            "intent": intent,
            "confidence": confidence,
            "missed": missed,
            "handoff": {
                "reason": reason,
                "skill": skill,
                "intent": intent,
                "confidence": confidence,
                "articles_shown": turn.articles_shown,
                "summary": summarize(tracker),
                "signals": dict(signals or {}),
            },
        }
    )

