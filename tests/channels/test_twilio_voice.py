"""Twilio Voice end to end: a caller talks to the bot, asks for a person and is put through.

Webhooks are the forms Twilio posts during a call, signed with Twilio's algorithm for the
public URL the hub gave it (the TwiML's own `action` and `Redirect` URLs are followed
exactly as Twilio would). The agent's side is a real console client on `/agent`; the Calls
API that redirects the live call is a local fake that checks what Twilio checks. Nothing
sleeps for a fixed time or measures one.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ElementTree
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import select, update

from bots.base import Bot, BotReply
from hub.domain import Author, ConversationStatus, CustomerContext, DeliveryStatus, Direction
from hub.errors import ConfigurationError
from hub.settings import OutboxSettings, load_settings
from hub.storage.models import Conversation, Message
from knowledge.embedding import Embedder
from tests.channels.console_status import status_shown
from tests.channels.fakes_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    VOICE_NUMBER,
    FakeTwilio,
    call_ended,
    call_form,
    dial_ended,
    digits_pressed,
    inbound_sms,
    new_call_sid,
    post_webhook,
    sign,
    speech_result,
)
from tests.channels.hubs import twilio_hub
from tests.channels.queries import customer_of, message_count, messages
from tests.conftest import RunningHub
from tests.console.console_client import ConsoleClient
from tests.console.routing_helpers import console, conversation, later, timeline

VOICE = "/channels/twilio/voice"
CHEN = "+8613800001002"  # demo customer C1002 (陈美玲, Chinese), known on voice
BECKER = "+8613800001009"  # demo customer C1009 (Daniel Becker, English), known on voice
NEW_CN = "+8613912340077"  # nobody the hub knows yet, a mainland number
NEW_US = "+14155550123"  # nobody the hub knows yet, a US number
LOST_CARD = "信用卡丢了怎么挂失"
TRANSFER_LIMIT = "how do I raise my transfer limit"


def voice_hub(
    template: Path, tmp_path: Path, embedders: list[Embedder], **voice: object
) -> AbstractAsyncContextManager[tuple[RunningHub, FakeTwilio]]:
    """A hub that answers calls to `VOICE_NUMBER` (and sends SMS, but not WhatsApp).

    Calls are spoken to live, not sent through the outbox, so the outbox keeps the production
    retry policy; `voice` replaces the `voice_*` Twilio settings.
    """
    return twilio_hub(
        template,
        tmp_path,
        embedders,
        twilio={"whatsapp_from": None, "voice_number": VOICE_NUMBER, **voice},
        outbox=OutboxSettings(),
    )


class Call:
    """One caller on the line: posts what Twilio posts, and follows the TwiML's URLs."""

    def __init__(self, hub: RunningHub, caller: str) -> None:
        self.hub = hub
        self.caller = caller
        self.sid = new_call_sid()

    async def post(self, url: str, params: dict[str, str]) -> ElementTree.Element:
        """POST to a public URL (as Twilio, signed for it); return the parsed TwiML."""
        status, body = await self.post_raw(url, params)
        assert status == 200, body
        root = ElementTree.fromstring(body)
        assert root.tag == "Response", body
        return root

    async def post_raw(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        assert url.startswith(PUBLIC_URL), url
        path = url.removeprefix(PUBLIC_URL)
        return await post_webhook(self.hub.base_url, path, params, signed_url=url)

    async def dial_in(self) -> ElementTree.Element:
        return await self.post(PUBLIC_URL + VOICE, call_form(self.caller, self.sid))

    async def say(self, twiml: ElementTree.Element, speech: str, language: str) -> Any:
        return await self.post(
            gather_of(twiml).attrib["action"],
            speech_result(self.caller, self.sid, speech, language),
        )

    async def press(self, twiml: ElementTree.Element, digits: str) -> ElementTree.Element:
        return await self.post(
            gather_of(twiml).attrib["action"], digits_pressed(self.caller, self.sid, digits)
        )

    async def stay_silent(self, twiml: ElementTree.Element) -> ElementTree.Element:
        """Say nothing: Twilio moves on to the `<Redirect>` after the Gather."""
        redirect = twiml.find("Redirect")
        assert redirect is not None and redirect.text, ElementTree.tostring(twiml)
        return await self.post(redirect.text, call_form(self.caller, self.sid))


def gather_of(twiml: ElementTree.Element) -> ElementTree.Element:
    gather = twiml.find("Gather")
    assert gather is not None, ElementTree.tostring(twiml, encoding="unicode")
    return gather


def spoken(element: ElementTree.Element) -> str:
    """Everything a caller hears from this TwiML (nested Says included), in order."""
    return " ".join(say.text or "" for say in element.iter("Say"))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def voice_messages(hub: RunningHub, call_sid: str) -> list[Message]:
    async with hub.hub.database.read() as session:
        rows = await session.scalars(
            select(Message)
            .where(Message.channel == "voice", Message.channel_message_id.startswith(call_sid))
            .order_by(Message.id)
        )
        return list(rows)


async def replies_in(hub: RunningHub, conversation_id: int) -> list[Message]:
    return await messages(hub, conversation_id=conversation_id, direction=Direction.OUTBOUND)


# -- greeting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "say_language", "voice", "gather_language", "greeting"),
    [
        (CHEN, "cmn-CN", "Polly.Zhiyu", "cmn-Hans-CN", "转人工"),  # known: Chinese
        (BECKER, "en-US", "Polly.Joanna", "en-US", "agent"),  # known English, a +86 number
        (NEW_CN, "cmn-CN", "Polly.Zhiyu", "cmn-Hans-CN", "转人工"),  # unknown: by number
        (NEW_US, "en-US", "Polly.Joanna", "en-US", "agent"),
    ],
)
async def test_a_caller_hears_the_recording_notice_and_a_greeting_in_their_language(
    demo_template: Path,
    tmp_path: Path,
    embedders: list[Embedder],
    caller: str,
    say_language: str,
    voice: str,
    gather_language: str,
    greeting: str,
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, _):
        twiml = await Call(hub, caller).dial_in()

        consent = twiml[0]
        assert consent.tag == "Say"
        assert "录音" in (consent.text or "") or "recorded" in (consent.text or "")
        assert consent.attrib == {"voice": voice, "language": say_language}
        gather = gather_of(twiml)
        assert gather.attrib["input"] == "speech dtmf"
        assert gather.attrib["language"] == gather_language
        assert gather.attrib["numDigits"] == "1" and gather.attrib["speechTimeout"] == "auto"
        assert gather.attrib["action"].startswith(PUBLIC_URL + VOICE + "/gather?")
        assert query_of(gather.attrib["action"])["turn"] == "1"
        assert greeting in spoken(gather) and "0" in spoken(gather)
        redirect = twiml.find("Redirect")  # no input: the silence path
        assert redirect is not None and (redirect.text or "").startswith(PUBLIC_URL)


async def test_without_recording_there_is_no_recording_notice(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders, voice_record=False) as (hub, _):
        twiml = await Call(hub, CHEN).dial_in()
        assert twiml[0].tag == "Gather"
        assert "录音" not in spoken(twiml)


# -- the bot answers aloud -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "question", "recognised_as", "expect"),
    [(CHEN, LOST_CARD, "cmn-Hans-CN", "挂失"), (NEW_US, TRANSFER_LIMIT, "en-US", "limit")],
)
async def test_a_spoken_question_is_answered_aloud_with_its_source_and_the_call_listens_again(
    demo_template: Path,
    tmp_path: Path,
    embedders: list[Embedder],
    caller: str,
    question: str,
    recognised_as: str,
    expect: str,
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, _):
        call = Call(hub, caller)
        answer = await call.say(await call.dial_in(), question, recognised_as)

        [inbound] = await voice_messages(hub, call.sid)
        assert inbound.text == question and inbound.author == Author.CUSTOMER
        assert inbound.channel_message_id == f"{call.sid}:1"
        [reply] = await replies_in(hub, inbound.conversation_id)
        assert reply.author == Author.BOT and reply.sources, reply.text
        assert reply.delivery_status == DeliveryStatus.SENT  # spoken on the live call
        said = spoken(answer)
        assert expect in said.lower()
        assert reply.text in said and reply.sources[0]["title"] in said  # the cited article
        gather = gather_of(answer)  # listening for the next question
        assert reply.text in spoken(gather)  # the caller may speak over a long answer
        assert query_of(gather.attrib["action"])["turn"] == "2"
        assert answer.find("Enqueue") is None


async def test_a_retried_gather_webhook_is_one_message_and_hears_the_same_answer(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, _):
        call = Call(hub, CHEN)
        greeting = await call.dial_in()
        first = await call.say(greeting, LOST_CARD, "cmn-Hans-CN")
        again = await call.say(greeting, LOST_CARD, "cmn-Hans-CN")  # Twilio retries turn 1
        assert spoken(again) == spoken(first)
        on_the_call = await voice_messages(hub, call.sid)
        assert [m.text for m in on_the_call if m.author == Author.CUSTOMER] == [LOST_CARD]
        assert len(await replies_in(hub, on_the_call[0].conversation_id)) == 1


class GatedBot:
    """The hub's bot, answering only once the test opens the gate (a slow Rasa, say)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.name = bot.name
        self.gate = asyncio.Event()

    async def respond(self, text: str, context: CustomerContext) -> BotReply:
        await self.gate.wait()
        return await self.bot.respond(text, context)


async def test_a_slow_answer_keeps_the_caller_on_the_line_until_it_comes(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders, voice_reply_seconds=0.2) as (
        hub,
        _,
    ):
        slow = GatedBot(hub.hub.router.bot)
        hub.hub.router.bot = slow
        call = Call(hub, CHEN)
        holding = await call.say(await call.dial_in(), LOST_CARD, "cmn-Hans-CN")
        assert "请稍等" in spoken(holding) and holding.find("Gather") is None
        redirect = holding.find("Redirect")
        assert redirect is not None and redirect.text

        slow.gate.set()
        [inbound] = await voice_messages(hub, call.sid)
        async with asyncio.timeout(60):  # the bot's answer is handed to the call
            while True:
                found = await replies_in(hub, inbound.conversation_id)
                if found and found[0].delivery_status == DeliveryStatus.SENT:
                    break
                await asyncio.sleep(0.05)
        answer = await call.post(redirect.text, call_form(CHEN, call.sid))
        [reply] = await replies_in(hub, inbound.conversation_id)
        assert reply.text in spoken(answer)
        assert query_of(gather_of(answer).attrib["action"])["turn"] == "2"
        assert len(await voice_messages(hub, call.sid)) == 1  # the redirect is no new message


async def test_the_same_customer_on_sms_and_on_the_phone(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        status, _ = await post_webhook(
            hub.base_url, "/channels/twilio/messages", inbound_sms(NEW_CN, LOST_CARD)
        )
        assert status == 200
        await twilio.next_where(lambda m: m.to == NEW_CN)
        call = Call(hub, NEW_CN)
        await call.say(await call.dial_in(), "怎么提高转账限额", "cmn-Hans-CN")
        on_sms = await customer_of(hub, "sms", NEW_CN)
        on_phone = await customer_of(hub, "voice", NEW_CN)
        assert on_phone.id == on_sms.id


# -- a person takes the call -----------------------------------------------------------------


async def test_pressing_0_queues_the_call_and_the_agent_who_accepts_is_put_through(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        wang = await console(hub, "agent.wang")  # cards
        try:
            call = Call(hub, CHEN)
            answered = await call.say(await call.dial_in(), LOST_CARD, "cmn-Hans-CN")
            held = await call.press(answered, "0")

            [inbound, *_] = await voice_messages(hub, call.sid)
            conversation_id = inbound.conversation_id
            queued = await conversation(hub, conversation_id)
            assert queued.status == ConversationStatus.QUEUED and queued.skill == "cards"
            [handoff_notice] = [m for m in await replies_in(hub, conversation_id) if m.handoff]
            enqueue = held.find("Enqueue")
            assert enqueue is not None and enqueue.text
            assert handoff_notice.text in spoken(held)
            hold = await call.post(enqueue.attrib["waitUrl"], call_form(CHEN, call.sid))
            assert "请稍候" in spoken(hold) and hold.find("Pause") is not None

            offer = await wang.offer_for(conversation_id)
            assert offer["conversation"]["channel"] == "voice"
            agent_id = int(wang.of("hello")[0]["staff"]["id"])
            await wang.ok("accept", {"conversation_id": conversation_id})

            redirect = await twilio.next_redirect(lambda r: r.call_sid == call.sid)
            assert redirect.method == "POST"
            assert redirect.url.startswith(PUBLIC_URL + VOICE + "/connect?")
            assert query_of(redirect.url)["conversation"] == str(conversation_id)
            connect = await call.post(redirect.url, call_form(CHEN, call.sid))
            dial = connect.find("Dial")
            assert dial is not None and dial.attrib["record"] == "record-from-answer-dual"
            client = dial.find("Client")
            assert client is not None and client.text == f"agent-{agent_id}"
            assert "王磊" in spoken(connect)  # the "agent has joined" notice, read out

            pop = await wang.next("screen_pop", lambda p: p["conversation_id"] == conversation_id)
            assert pop["channel"] == "voice" and pop["conversation"]["skill"] == "cards"
            assert pop["caller"] != CHEN and pop["caller"].endswith(CHEN[-4:])  # masked
            assert pop["handoff"]["skill"] == "cards"

            # Once the caller talks to the agent, typed text cannot reach them: it fails,
            # saying why, instead of vanishing.
            reply = await wang.send(conversation_id, "您好，我来帮您挂失。")
            failed = await status_shown(wang, reply["id"], "failed")
            assert "on the phone" in failed["delivery_error"]
        finally:
            await wang.close()


async def test_an_agent_message_to_a_caller_who_hung_up_fails_saying_so(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        li = await console(hub, "agent.li")  # general
        try:
            call = Call(hub, NEW_CN)
            await call.say(await call.dial_in(), "转人工", "cmn-Hans-CN")
            [inbound, *_] = await voice_messages(hub, call.sid)
            await li.offer_for(inbound.conversation_id)
            status, _ = await call.post_raw(
                PUBLIC_URL + VOICE + "/status", call_ended(NEW_CN, call.sid)
            )
            assert status == 200
            twilio.ended_calls.add(call.sid)
            await li.ok("accept", {"conversation_id": inbound.conversation_id})
            await twilio.wait_attempts(1)  # Twilio refused to redirect an ended call
            assert twilio.redirects == []
            reply = await li.send(inbound.conversation_id, "您好，请问还在吗？")
            failed = await status_shown(li, reply["id"], "failed")
            assert "not on the line" in failed["delivery_error"]
        finally:
            await li.close()


async def test_a_caller_who_hangs_up_in_the_queue_abandons_it(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        call = Call(hub, CHEN)
        held = await call.press(await call.dial_in(), "0")
        assert held.find("Enqueue") is not None
        [inbound, *_] = await voice_messages(hub, call.sid)
        assert inbound.text == "转人工"
        assert (await conversation(hub, inbound.conversation_id)).status == "queued"

        status, _ = await call.post_raw(PUBLIC_URL + VOICE + "/status", call_ended(CHEN, call.sid))
        assert status == 200
        await hub.hub.routing.tick(now=later(hub.settings.routing.abandon_seconds + 1))
        abandoned = await conversation(hub, inbound.conversation_id)
        assert abandoned.status == ConversationStatus.CLOSED
        assert abandoned.resolution == "abandoned"
        assert twilio.redirects == []
        kinds = await timeline(hub, inbound.conversation_id)
        assert "call_ended" in kinds and kinds.index("call_ended") < kinds.index("abandoned")


async def test_silence_is_asked_about_once_then_the_call_ends(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, _):
        call = Call(hub, NEW_US)
        before = await message_count(hub)
        reprompt = await call.stay_silent(await call.dial_in())
        assert "didn't hear" in spoken(gather_of(reprompt))
        assert query_of(gather_of(reprompt).attrib["action"])["turn"] == "1"
        goodbye = await call.stay_silent(reprompt)
        assert "Goodbye" in spoken(goodbye)
        assert goodbye.find("Hangup") is not None and goodbye.find("Gather") is None
        assert await message_count(hub) == before


# -- the agent's phone, and callers who come back -------------------------------------------


async def put_through(
    hub: RunningHub, twilio: FakeTwilio, agent: ConsoleClient, call: Call
) -> tuple[int, int, ElementTree.Element]:
    """Queue `call` with key 0, let `agent` accept: (conversation id, agent id, the Dial)."""
    held = await call.press(await call.dial_in(), "0")
    assert held.find("Enqueue") is not None
    [inbound, *_] = await voice_messages(hub, call.sid)
    await agent.offer_for(inbound.conversation_id)
    await agent.ok("accept", {"conversation_id": inbound.conversation_id})
    redirect = await twilio.next_redirect(lambda r: r.call_sid == call.sid)
    connect = await call.post(redirect.url, call_form(call.caller, call.sid))
    dial = connect.find("Dial")
    assert dial is not None
    return inbound.conversation_id, int(agent.of("hello")[0]["staff"]["id"]), dial


@pytest.mark.parametrize("dial_status", ["no-answer", "busy", "failed", "canceled"])
async def test_an_agent_who_does_not_answer_puts_the_caller_back_on_hold_and_in_the_queue(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder], dial_status: str
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        wang = await console(hub, "agent.wang")  # cards
        try:
            call = Call(hub, CHEN)
            conversation_id, agent_id, dial = await put_through(hub, twilio, wang, call)
            action = dial.attrib["action"]
            assert action.startswith(PUBLIC_URL + VOICE + "/dialed?")
            assert dial.attrib["method"] == "POST"
            assert query_of(action)["conversation"] == str(conversation_id)
            assert query_of(action)["agent"] == str(agent_id)
            skill = (await conversation(hub, conversation_id)).skill
            seen = len(wang.received)

            again = await call.post(action, dial_ended(CHEN, call.sid, dial_status))

            assert "无法接听" in spoken(again)
            enqueue = again.find("Enqueue")
            assert enqueue is not None and again.find("Dial") is None
            requeued = await conversation(hub, conversation_id)
            assert requeued.status == ConversationStatus.QUEUED
            assert requeued.assigned_agent_id is None and requeued.skill == skill  # its own queue
            gone = await wang.next(
                "unassigned", lambda u: u["conversation_id"] == conversation_id, after=seen
            )
            assert gone["reason"] == "voice_" + dial_status.replace("-", "_")
            assert (await timeline(hub, conversation_id)).count("requeued") == 1

            # Twilio retries the callback: the caller holds again, nothing is unassigned twice.
            retried = await call.post(action, dial_ended(CHEN, call.sid, dial_status))
            assert retried.find("Enqueue") is not None
            assert (await timeline(hub, conversation_id)).count("requeued") == 1

            assert (await timeline(hub, conversation_id)).count("call_unanswered") == 1

            # While holding, what the hub says is read out again. The agent who let it ring
            # is not rung again at once: the next cards agent to come on gets the offer, and
            # accepting puts the call through to them.
            hold = await call.post(enqueue.attrib["waitUrl"], call_form(CHEN, call.sid))
            assert hold.find("Pause") is not None
            zhou = await console(hub, "agent.zhou")  # cards
            try:
                await zhou.offer_for(conversation_id)
                first = twilio.redirects[0]
                await zhou.ok("accept", {"conversation_id": conversation_id})
                second = await twilio.next_redirect(
                    lambda r: r.call_sid == call.sid and r is not first
                )
                assert query_of(second.url)["conversation"] == str(conversation_id)
                assert query_of(second.url)["agent"] != str(agent_id)
                assert "offer" not in [e for e, _ in wang.received[seen:]]
            finally:
                await zhou.close()
        finally:
            await wang.close()


async def test_a_talk_with_the_agent_that_ends_normally_ends_the_call_with_thanks(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        wang = await console(hub, "agent.wang")
        try:
            call = Call(hub, CHEN)
            conversation_id, agent_id, dial = await put_through(hub, twilio, wang, call)
            action = dial.attrib["action"]

            bye = await call.post(action, dial_ended(CHEN, call.sid, "completed"))

            assert "感谢" in spoken(bye) and bye.find("Hangup") is not None
            assert bye.find("Enqueue") is None
            kept = await conversation(hub, conversation_id)
            assert kept.status == ConversationStatus.ASSIGNED
            assert kept.assigned_agent_id == agent_id
            assert "requeued" not in await timeline(hub, conversation_id)

            path = action.removeprefix(PUBLIC_URL)
            not_a_dial = dial_ended(CHEN, call.sid, "ringing")
            assert (await call.post_raw(action, not_a_dial))[0] == 400
            forged = dial_ended(CHEN, call.sid, "no-answer")
            other = PUBLIC_URL + path.replace(f"agent={agent_id}", f"agent={agent_id + 1}")
            status, _ = await post_webhook(hub.base_url, path, forged, signed_url=other)
            assert status == 403
            assert (await conversation(hub, conversation_id)).status == "assigned"
        finally:
            await wang.close()


async def test_a_caller_still_in_the_queue_goes_straight_back_on_hold(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, _):
        first = Call(hub, CHEN)
        assert (await first.press(await first.dial_in(), "0")).find("Enqueue") is not None
        [inbound, *_] = await voice_messages(hub, first.sid)
        status, _ = await first.post_raw(
            PUBLIC_URL + VOICE + "/status", call_ended(CHEN, first.sid)
        )
        assert status == 200
        before = await message_count(hub)

        back = await Call(hub, CHEN).dial_in()

        assert back[0].tag == "Say" and "录音" in (back[0].text or "")  # consent first
        assert "仍在等待" in spoken(back)
        assert back.find("Gather") is None and back.find("Enqueue") is not None
        assert await message_count(hub) == before  # no bot turn
        assert (await conversation(hub, inbound.conversation_id)).status == "queued"


async def test_a_turn_while_the_conversation_is_queued_holds_instead_of_asking_the_bot(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, _):
        call = Call(hub, CHEN)
        answered = await call.say(await call.dial_in(), LOST_CARD, "cmn-Hans-CN")
        [inbound] = await voice_messages(hub, call.sid)
        replies = len(await replies_in(hub, inbound.conversation_id))
        # Meanwhile the conversation went to a queue (from the console, say).
        async with hub.hub.database.write() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == inbound.conversation_id)
                .values(status=ConversationStatus.QUEUED, skill="cards")
            )

        held = await call.say(answered, "还有一个问题", "cmn-Hans-CN")

        assert held.find("Enqueue") is not None and held.find("Gather") is None
        assert "仍在等待" in spoken(held) and "没能为您查到" not in spoken(held)
        asked = [m.text for m in await voice_messages(hub, call.sid)]
        assert asked == [LOST_CARD, "还有一个问题"]  # the agent reads what was said
        assert len(await replies_in(hub, inbound.conversation_id)) == replies


async def test_a_caller_whose_agent_has_the_conversation_is_put_through_to_that_agent(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        wang = await console(hub, "agent.wang")
        try:
            first = Call(hub, CHEN)
            conversation_id, agent_id, _ = await put_through(hub, twilio, wang, first)
            status, _ = await first.post_raw(
                PUBLIC_URL + VOICE + "/status", call_ended(CHEN, first.sid)
            )
            assert status == 200
            assert "call_ended" in await timeline(hub, conversation_id)
            seen = len(wang.received)

            second = Call(hub, CHEN)
            back = await second.dial_in()

            assert back.find("Gather") is None and back.find("Enqueue") is None
            redirect = back.find("Redirect")
            assert redirect is not None and redirect.text
            assert redirect.text.startswith(PUBLIC_URL + VOICE + "/connect?")
            assert query_of(redirect.text)["agent"] == str(agent_id)
            assert query_of(redirect.text)["conversation"] == str(conversation_id)
            connect = await second.post(redirect.text, call_form(CHEN, second.sid))
            client = connect.find("Dial/Client")
            assert client is not None and client.text == f"agent-{agent_id}"
            pop = await wang.next(
                "screen_pop", lambda p: p["conversation_id"] == conversation_id, after=seen
            )
            assert pop["channel"] == "voice"
        finally:
            await wang.close()


# -- refused -------------------------------------------------------------------------------


async def test_bad_signatures_are_refused_and_payloads_not_from_twilio_are_400(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with voice_hub(demo_template, tmp_path, embedders) as (hub, _):
        before = await message_count(hub)
        sid = new_call_sid()
        gather = VOICE + "/gather?turn=1&lang=zh"
        form = speech_result(CHEN, sid, "把钱转给我自己", "cmn-Hans-CN")
        tampered = dict(form, SpeechResult="把钱转给别人")
        refused: list[tuple[dict[str, Any], str, dict[str, str]]] = [
            ({"token": None}, VOICE, call_form(CHEN, sid)),
            ({"token": "someone-elses-auth-token"}, gather, form),
            ({"signed_url": hub.base_url + gather}, gather, form),  # not the public URL
            ({"signed_url": PUBLIC_URL + VOICE + "/gather?turn=2&lang=zh"}, gather, form),
            ({"signature": sign(PUBLIC_URL + gather, form)}, gather, tampered),
        ]
        for kwargs, path, params in refused:
            status, text = await post_webhook(hub.base_url, path, params, **kwargs)
            assert status == 403, (kwargs, text)
        async with (
            aiohttp.ClientSession() as http,
            http.post(hub.base_url + VOICE, json={"From": CHEN}) as response,
        ):
            assert response.status == 400
        not_a_call = {"AccountSid": ACCOUNT_SID, "From": CHEN}  # signed, but no CallSid
        assert (await post_webhook(hub.base_url, VOICE, not_a_call))[0] == 400
        bad_turn = VOICE + "/gather?turn=zero&lang=zh"
        assert (await post_webhook(hub.base_url, bad_turn, form))[0] == 400
        assert await message_count(hub) == before


# -- settings ------------------------------------------------------------------------------

BASE = {
    "SERVICEHUB_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
    "SERVICEHUB_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "SERVICEHUB_PUBLIC_URL": PUBLIC_URL,
}


def test_twilio_with_only_a_voice_number_is_a_valid_configuration() -> None:
    settings = load_settings(
        {
            **BASE,
            "SERVICEHUB_TWILIO_VOICE_NUMBER": VOICE_NUMBER,
            "SERVICEHUB_TWILIO_VOICE_AGENT_TARGET": "sip:agent-{agent_id}@pbx.bank.example",
            "SERVICEHUB_TWILIO_VOICE_RECORD": "false",
            "SERVICEHUB_TWILIO_VOICE_REPLY_SECONDS": "8",
        }
    )
    assert settings.twilio is not None and settings.twilio.voice_enabled
    assert settings.twilio.sms_from is None
    assert settings.twilio.voice_agent_target == "sip:agent-{agent_id}@pbx.bank.example"
    assert settings.twilio.voice_record is False
    assert settings.twilio.voice_reply_seconds == 8.0


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"SERVICEHUB_TWILIO_VOICE_NUMBER": "0800 123"}, "SERVICEHUB_TWILIO_VOICE_NUMBER"),
        (
            {"SERVICEHUB_TWILIO_VOICE_AGENT_TARGET": "client:agents"},
            "SERVICEHUB_TWILIO_VOICE_AGENT_TARGET",
        ),
        ({"SERVICEHUB_TWILIO_VOICE_RECORD": "maybe"}, "SERVICEHUB_TWILIO_VOICE_RECORD"),
        ({"SERVICEHUB_TWILIO_VOICE_REPLY_SECONDS": "30"}, "15 s"),
        ({"SERVICEHUB_TWILIO_VOICE_REPLY_SECONDS": "soon"}, "REPLY_SECONDS"),
    ],
)
def test_bad_voice_settings_fail_at_start_up_saying_what_to_set(
    environ: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings({**BASE, "SERVICEHUB_TWILIO_VOICE_NUMBER": VOICE_NUMBER, **environ})
    assert says in error.value.message
