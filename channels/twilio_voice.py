"""Twilio Voice: a caller talks to the bot turn by turn, and is put through to an agent.

* `POST /channels/twilio/voice` — the number's "A call comes in" webhook. The caller hears
  the recording notice and a greeting in their language, inside a `<Gather input="speech
  dtmf">`: speech (or a key) comes back to `…/voice/gather?turn=N`.
* `…/voice/gather` — the speech result is one `InboundMessage` on channel `voice`, keyed
  `CallSid:turn` (a webhook Twilio retries is one message), through the same pipeline as
  every channel. The webhook waits (bounded, below Twilio's 15 s limit) for the bot's turn
  to finish, then `<Say>`s the answer inside the next `<Gather>`. Key 0, like saying
  "转人工"/"agent", asks for a person. A handoff `<Enqueue>`s the caller to hold.
* `…/voice/silence` — no input: ask once more, then say goodbye and hang up.
* `…/voice/wait` — the queue's hold loop. `…/voice/status` — the call's status callback:
  when the caller hangs up, routing hears they left (a queued conversation is abandoned).
* When an agent accepts, routing tells this channel (`agent_assigned`); the live call is
  redirected with Twilio's Calls API to `…/voice/connect`, which `<Dial>`s the agent
  (recorded, when recording is on) and pops the caller's context on the agent's console.
* `…/voice/dialed` — the `<Dial>`'s action: Twilio posts how the call to the agent ended.
  When the agent did not answer (no-answer, busy, failed, canceled) the caller is told so
  and holds again, and routing unassigns that agent and requeues the conversation; when the
  talk ended normally the caller hears thanks and the call ends.
* A caller whose conversation is already with a person does not start over with the bot:
  queued, they go straight back on hold; assigned, they are put through to that agent.

The channel is live (no outbox): `send` hands a reply to the call in progress. A message
for a caller who is not on the line fails at once, saying so, instead of being lost. Call
state is kept in this process; everything Twilio needs to continue a call (turn, language,
conversation, agent) travels in the signed callback URLs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from multidict import MultiDictProxy

from channels.base import Channel, ChannelContext, ConversationState
from channels.twilio_webhooks import twilio_settings, twiml, verified_form
from hub.domain import (
    AgentAssignment,
    Author,
    ConversationStatus,
    CustomerAddress,
    DeliveryResult,
    InboundMessage,
    OutboundMessage,
)
from hub.domain import Channel as ChannelName
from hub.errors import InvalidInput
from hub.phones import normalise_address
from hub.tasks import wait_for_event
from hub.twilio_settings import TwilioSettings

log = logging.getLogger(__name__)

VOICE_PATH = "/channels/twilio/voice"
GATHER_PATH = VOICE_PATH + "/gather"
SILENCE_PATH = VOICE_PATH + "/silence"
WAIT_PATH = VOICE_PATH + "/wait"
CONNECT_PATH = VOICE_PATH + "/connect"
STATUS_PATH = VOICE_PATH + "/status"
DIALED_PATH = VOICE_PATH + "/dialed"

HANDOFF_DIGIT = "0"
QUEUE_NAME = "servicehub"  # a holding pen only: the hub's routing decides who answers
GATHER_TIMEOUT_SECONDS = 6  # silence after the prompt before Twilio gives up listening
HOLD_PAUSE_SECONDS = 20  # between hold messages (the wait URL's TwiML loops)
MAX_SAY_CHARS = 3000  # Twilio refuses <Say> text beyond a few thousand characters
ENDED_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# A `<Dial>`'s DialCallStatus: the agent never came on the line, or the talk took place.
NOT_ANSWERED = frozenset({"no-answer", "busy", "failed", "canceled"})
TALKED = frozenset({"completed", "answered"})
MANDARIN_COUNTRY_CODES = ("+86",)  # a caller the hub does not know yet is greeted by number


@dataclass(frozen=True)
class Voice:
    """How the hub speaks and listens in one language (Twilio's codes differ for each)."""

    say_voice: str  # Amazon Polly voice, through Twilio
    say_language: str
    gather_language: str  # speech recognition
    hints: str  # phrases recognition should expect
    texts: Mapping[str, str]


VOICES = {
    "zh": Voice(
        say_voice="Polly.Zhiyu",
        say_language="cmn-CN",
        gather_language="cmn-Hans-CN",
        hints="转人工,人工客服,挂失,信用卡",
        texts={
            "consent": "为保证服务质量，您与客服人员的通话将被录音。继续通话即表示您同意录音。",
            "greeting": "您好，欢迎致电。请直接说出您的问题；需要人工服务，请说“转人工”或按0。",
            "handoff_words": "转人工",
            "anything_else": "还有其他问题吗？",
            "reprompt": "抱歉，没有听到您的声音。请说出您的问题，或按0转人工。",
            "keys": "请直接说出您的问题，或按0转人工。",
            "goodbye_silent": "一直没有听到您的声音，我们先挂断了，欢迎再次来电。再见。",
            "still_working": "请稍等，正在为您查询。",
            "no_answer": "抱歉，暂时没能为您查到。您可以换个说法再问一次，或按0转人工。",
            "hold": "正在为您转接人工客服，请稍候。",
            "queue_failed": "抱歉，现在无法为您转接，请稍后再拨。",
            "thanks": "感谢您的来电，再见。",
            "agent_unavailable": "抱歉，客服人员暂时无法接听。我们正在为您转接其他客服，请稍候。",
            "still_queued": "您好，您仍在等待人工客服，请稍候。",
            "to_your_agent": "正在为您接通负责您问题的客服人员。",
            "sources": "参考：",
        },
    ),
    "en": Voice(
        say_voice="Polly.Joanna",
        say_language="en-US",
        gather_language="en-US",
        hints="agent,representative,lost card,transfer limit",
        texts={
            "consent": "Calls with our staff are recorded for quality and compliance. "
            "By staying on the line you agree to the recording.",
            "greeting": "Hello, thank you for calling. Please tell me your question. "
            "To speak to an agent, say agent or press 0.",
            "handoff_words": "agent",
            "anything_else": "Is there anything else I can help with?",
            "reprompt": "Sorry, I didn't hear anything. Please say your question, "
            "or press 0 for an agent.",
            "keys": "Please say your question, or press 0 for an agent.",
            "goodbye_silent": "We didn't hear anything, so we will end the call now. "
            "Please call again any time. Goodbye.",
            "still_working": "One moment please, I'm still looking that up.",
            "no_answer": "Sorry, I couldn't find that just now. You can ask in other words, "
            "or press 0 for an agent.",
            "hold": "We're connecting you to an agent. Please hold.",
            "queue_failed": "Sorry, we can't connect you right now. Please call again later.",
            "thanks": "Thank you for calling. Goodbye.",
            "agent_unavailable": "Sorry, the agent couldn't take your call. "
            "We're putting you back in line for the next agent.",
            "still_queued": "Hello again. You're still in line for an agent. Please hold.",
            "to_your_agent": "Putting you through to the agent handling your request.",
            "sources": "Source: ",
        },
    ),
}


# -- TwiML ---------------------------------------------------------------------------------------


class TwiML:
    """A TwiML document; ElementTree escapes every caller-influenced text and attribute."""

    def __init__(self, voice: Voice) -> None:
        self.voice = voice
        self.root = ElementTree.Element("Response")

    def say(self, text: str, parent: ElementTree.Element | None = None) -> TwiML:
        element = ElementTree.SubElement(
            self.root if parent is None else parent,
            "Say",
            voice=self.voice.say_voice,
            language=self.voice.say_language,
        )
        element.text = text[:MAX_SAY_CHARS]
        return self

    def gather(self, action: str, *prompts: str) -> TwiML:
        element = ElementTree.SubElement(
            self.root,
            "Gather",
            input="speech dtmf",
            action=action,
            method="POST",
            language=self.voice.gather_language,
            hints=self.voice.hints,
            speechTimeout="auto",
            numDigits="1",
            timeout=str(GATHER_TIMEOUT_SECONDS),
        )
        for prompt in prompts:  # inside the Gather, so the caller may speak over them
            self.say(prompt, element)
        return self

    def verb(self, name: str, text: str | None = None, **attributes: str) -> TwiML:
        element = ElementTree.SubElement(self.root, name, attributes)
        element.text = text
        return self

    def dial(self, target: str, *, action: str, record: bool) -> TwiML:
        # The caller hears ringing, not silence; `action` hears how the dial ended.
        attributes = {"answerOnBridge": "true", "action": action, "method": "POST"}
        if record:
            attributes["record"] = "record-from-answer-dual"
        dial = ElementTree.SubElement(self.root, "Dial", attributes)
        noun, _, rest = target.partition(":")
        if target.startswith("+"):
            ElementTree.SubElement(dial, "Number").text = target
        elif noun == "client":
            ElementTree.SubElement(dial, "Client").text = rest
        else:
            ElementTree.SubElement(dial, "Sip").text = target
        return self

    def response(self) -> web.Response:
        body = ElementTree.tostring(self.root, encoding="unicode")
        return twiml('<?xml version="1.0" encoding="UTF-8"?>' + body)


# -- call state ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Utterance:
    text: str
    handoff: bool


@dataclass
class _Turn:
    """One question of the caller; a retried webhook for it hears the same answer."""

    number: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    spoken: list[_Utterance] | None = None


@dataclass
class _Call:
    """A call in progress in this process."""

    sid: str
    address: str  # E.164
    language: str
    pending: list[_Utterance] = field(default_factory=list)  # replies not yet read out
    turn: _Turn | None = None
    with_agent: bool = False  # <Dial>ed: typed messages can no longer be read out
    said: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start_turn(self, number: int) -> _Turn:
        if self.turn is None or self.turn.number != number:
            self.turn = _Turn(number)
        return self.turn

    def take_pending(self) -> list[_Utterance]:
        taken, self.pending = self.pending, []
        return taken


@dataclass(frozen=True)
class _CallForm:
    sid: str
    caller: str


class TwilioVoiceChannel(Channel):
    """Phone calls over Twilio: speech in, speech out, and a person when asked."""

    name = ChannelName.VOICE.value
    uses_outbox = False  # a reply is spoken on the live call, or not at all

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self._calls: dict[str, _Call] = {}  # E.164 address → its call in progress
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def setup(self, app: web.Application) -> None:
        twilio = self.context.settings.twilio
        if twilio is None or not twilio.voice_enabled:
            return  # off: the webhooks answer 404, like any channel without credentials
        app.router.add_post(VOICE_PATH, self.on_call)
        app.router.add_post(GATHER_PATH, self.on_gather)
        app.router.add_post(SILENCE_PATH, self.on_silence)
        app.router.add_post(WAIT_PATH, self.on_wait)
        app.router.add_post(CONNECT_PATH, self.on_connect)
        app.router.add_post(STATUS_PATH, self.on_status)
        app.router.add_post(DIALED_PATH, self.on_dialed)
        app.cleanup_ctx.append(self._resources)

    async def _resources(self, _: web.Application) -> AsyncIterator[None]:
        yield
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    # -- webhooks ----------------------------------------------------------------------------

    async def on_call(self, request: web.Request) -> web.StreamResponse:
        """A call comes in: the recording notice, a greeting, and the first Gather."""
        form = await verified_form(request, self.context.settings)
        caller = self._call_form(form)
        address = self._address(caller.caller)
        language = await self._greeting_language(address)
        self._calls[address] = _Call(caller.sid, address, language)
        if self.context.customer_connected is not None:
            await self.context.customer_connected(CustomerAddress(self.name, address), True)
        voice = VOICES[language]
        answer = TwiML(voice)
        if self._twilio.voice_record:
            # Said before the Gather so that speaking cannot cut the legal notice short.
            answer.say(voice.texts["consent"])
        person = await self._with_person(address)
        if person is not None:  # calling back while queued or with an agent: no bot again
            return self._to_person(answer, self._calls[address], person, voice.texts)
        answer.gather(self._url(GATHER_PATH, turn=1, lang=language), voice.texts["greeting"])
        answer.verb("Redirect", self._url(SILENCE_PATH, turn=1, lang=language), method="POST")
        return answer.response()

    async def on_gather(self, request: web.Request) -> web.StreamResponse:
        """The caller spoke or pressed a key: put it through the pipeline, speak the answer."""
        form = await verified_form(request, self.context.settings)
        call = self._call(self._call_form(form), request.query)
        number = _positive_int(request.query, "turn")
        voice = VOICES[call.language]
        if "waited" in request.query:  # our own redirect while the bot is still thinking
            return await self._answer(call, call.start_turn(number), waited=True)
        digits = form.get("Digits", "").strip()
        speech = form.get("SpeechResult", "").strip()
        text = voice.texts["handoff_words"] if digits == HANDOFF_DIGIT else speech
        inbound = InboundMessage(
            address=CustomerAddress(self.name, call.address),
            text=text,
            channel_message_id=f"{call.sid}:{number}",
        )
        # A new turn while a person already has the conversation (queued or taken from
        # another channel meanwhile): the bot stays out, so hold or connect instead. A
        # retried turn is left alone: it must hear what it heard the first time.
        if call.turn is None or call.turn.number != number:
            person = await self._with_person(call.address)
            if person is not None:
                if text and not (digits and digits != HANDOFF_DIGIT):
                    await self.accept_webhook_message(inbound)  # the agent reads it
                return self._to_person(TwiML(voice), call, person, voice.texts)
        if digits and digits != HANDOFF_DIGIT:
            return self._prompt(call, number, voice.texts["keys"])
        if not text:
            return self._prompt(call, number, voice.texts["reprompt"])
        turn = call.start_turn(number)
        if await self.accept_webhook_message(inbound) is None:
            return self._prompt(call, number, voice.texts["no_answer"])
        return await self._answer(call, turn, waited=False)

    async def on_silence(self, request: web.Request) -> web.StreamResponse:
        """Nothing was said: ask once more, then say goodbye and hang up."""
        form = await verified_form(request, self.context.settings)
        call = self._call(self._call_form(form), request.query)
        number = _positive_int(request.query, "turn")
        voice = VOICES[call.language]
        if _positive_int(request.query, "tries", default=1) < 2:
            return self._prompt(call, number, voice.texts["reprompt"], tries=2)
        return TwiML(voice).say(voice.texts["goodbye_silent"]).verb("Hangup").response()

    async def on_wait(self, request: web.Request) -> web.StreamResponse:
        """The hold loop while queued: what the hub has to say, the hold message, a pause."""
        form = await verified_form(request, self.context.settings)
        call = self._call(self._call_form(form), request.query)
        voice = VOICES[call.language]
        answer = TwiML(voice)
        for utterance in call.take_pending():
            answer.say(utterance.text)
        answer.say(voice.texts["hold"]).verb("Pause", length=str(HOLD_PAUSE_SECONDS))
        return answer.response()

    async def on_connect(self, request: web.Request) -> web.StreamResponse:
        """Twilio follows our redirect: put the caller through to the agent, pop their screen."""
        form = await verified_form(request, self.context.settings)
        call = self._call(self._call_form(form), request.query)
        conversation_id = _positive_int(request.query, "conversation")
        agent_id = _positive_int(request.query, "agent")
        call.with_agent = True
        voice = VOICES[call.language]
        answer = TwiML(voice)
        for utterance in call.take_pending():  # e.g. "Li Min is taking over"
            answer.say(utterance.text)
        target = self._twilio.voice_agent_target.replace("{agent_id}", str(agent_id))
        # With an action Twilio asks `…/dialed` what next instead of reading on: nothing
        # follows the Dial here, the goodbye or the way back to the queue is decided there.
        dialed = self._url(
            DIALED_PATH, conversation=conversation_id, agent=agent_id, lang=call.language
        )
        answer.dial(target, action=dialed, record=self._twilio.voice_record)
        if self.context.screen_pop is not None:
            await self.context.screen_pop(conversation_id, agent_id, self.name)
        return answer.response()

    async def on_dialed(self, request: web.Request) -> web.StreamResponse:
        """The `<Dial>` to the agent ended: goodbye after a talk, back on hold if unanswered."""
        form = await verified_form(request, self.context.settings)
        call = self._call(self._call_form(form), request.query)
        conversation_id = _positive_int(request.query, "conversation")
        agent_id = _positive_int(request.query, "agent")
        status = form.get("DialCallStatus", "").strip()
        voice = VOICES[call.language]
        if status in TALKED:
            return TwiML(voice).say(voice.texts["thanks"]).verb("Hangup").response()
        if status not in NOT_ANSWERED:
            raise InvalidInput(
                f"DialCallStatus must be one of {sorted(NOT_ANSWERED | TALKED)}: "
                "this is not a Twilio dial callback."
            )
        log.info("twilio voice: agent %s did not take call %s (%s)", agent_id, call.sid, status)
        call.with_agent = False  # on hold again: the hub's messages can be read out
        answer = TwiML(voice).say(voice.texts["agent_unavailable"])
        if self.context.return_to_queue is not None:
            reason = "voice_" + status.replace("-", "_")
            if await self.context.return_to_queue(conversation_id, agent_id, reason):
                return self._hold(answer, call)
        # Not requeued (a retried callback, a take-over, a close meanwhile): follow the
        # conversation as it is now rather than the agent the call rang.
        person = await self._with_person(call.address)
        if person is not None and person[2] != agent_id:
            return self._to_person(answer, call, person, {})
        if person is not None or self.context.return_to_queue is None:
            return self._hold(answer, call)
        return answer.say(voice.texts["thanks"]).verb("Hangup").response()

    async def on_status(self, request: web.Request) -> web.StreamResponse:
        """The call's status callback: a caller who hung up has left the queue."""
        form = await verified_form(request, self.context.settings)
        caller = self._call_form(form)
        status = form.get("CallStatus", "")
        if status not in ENDED_STATUSES:
            return twiml()  # ringing, in-progress: nothing changes for the hub
        address = self._address(caller.caller)
        log.info("twilio voice: call %s from %s ended (%s)", caller.sid, address[-4:], status)
        call = self._calls.get(address)
        if call is not None and call.sid == caller.sid:
            del self._calls[address]
            if call.turn is not None:
                call.turn.done.set()  # a webhook still waiting for the bot can finish
        if self.context.customer_connected is not None:
            await self.context.customer_connected(CustomerAddress(self.name, address), False)
        if self.context.call_ended is not None:
            await self.context.call_ended(CustomerAddress(self.name, address), status)
        return twiml()

    # -- a turn's answer -----------------------------------------------------------------------

    async def _answer(self, call: _Call, turn: _Turn, *, waited: bool) -> web.StreamResponse:
        """Wait for the bot to finish the turn, then speak it (or hold the line once)."""
        voice = VOICES[call.language]
        if turn.spoken is None:
            await wait_for_event(turn.done, self._twilio.voice_reply_seconds)
            if not turn.done.is_set() and not waited:
                # Twilio hangs up on a webhook after 15 s: say something and come back.
                url = self._url(GATHER_PATH, turn=turn.number, lang=call.language, waited=1)
                answer = TwiML(voice).say(voice.texts["still_working"])
                return answer.verb("Redirect", url, method="POST").response()
            if turn.spoken is None:  # a retried webhook waiting alongside may have taken it
                turn.spoken = call.take_pending()
        if any(u.handoff for u in turn.spoken):
            answer = TwiML(voice)
            for utterance in turn.spoken:
                answer.say(utterance.text)
            return self._hold(answer, call)
        texts = [u.text for u in turn.spoken] or [voice.texts["no_answer"]]
        return self._prompt(call, turn.number + 1, *texts, voice.texts["anything_else"])

    def _prompt(self, call: _Call, number: int, *texts: str, tries: int = 1) -> web.Response:
        """Say `texts` while listening for turn `number`; silence leads to `…/silence`."""
        answer = TwiML(VOICES[call.language])
        answer.gather(self._url(GATHER_PATH, turn=number, lang=call.language), *texts)
        silence = self._url(SILENCE_PATH, turn=number, lang=call.language, tries=tries)
        return answer.verb("Redirect", silence, method="POST").response()

    def _hold(self, answer: TwiML, call: _Call) -> web.Response:
        """Finish `answer` by putting the caller on hold until routing finds an agent."""
        voice = VOICES[call.language]
        wait_url = self._url(WAIT_PATH, lang=call.language)
        answer.verb("Enqueue", QUEUE_NAME, waitUrl=wait_url, waitUrlMethod="POST")
        # Reached only if Twilio could not queue the call (a redirect leaves the queue).
        return answer.say(voice.texts["queue_failed"]).verb("Hangup").response()

    async def _with_person(self, address: str) -> ConversationState | None:
        """The caller's open conversation when it is queued for or assigned to a person."""
        if self.context.current_conversation is None:
            return None
        state = await self.context.current_conversation(CustomerAddress(self.name, address))
        if state is None or state[1] not in (
            ConversationStatus.QUEUED,
            ConversationStatus.ASSIGNED,
        ):
            return None
        return state

    def _to_person(
        self, answer: TwiML, call: _Call, person: ConversationState, texts: Mapping[str, str]
    ) -> web.Response:
        """Hold a queued caller; put an assigned one through to their agent (`…/connect`).

        `texts` are the call's phrases, or empty when `answer` already said why.
        """
        conversation_id, status, agent_id = person
        if status == ConversationStatus.ASSIGNED and agent_id is not None:
            if "to_your_agent" in texts:
                answer.say(texts["to_your_agent"])
            url = self._url(
                CONNECT_PATH, conversation=conversation_id, agent=agent_id, lang=call.language
            )
            return answer.verb("Redirect", url, method="POST").response()
        if "still_queued" in texts:
            answer.say(texts["still_queued"])
        return self._hold(answer, call)

    # -- outbound ------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Hand the reply to the call in progress; a caller not on the line cannot hear it."""
        call = self._calls.get(message.address.address)
        if call is None:
            return DeliveryResult(
                ok=False,
                error="The caller is not on the line; call them back.",
                retryable=False,
            )
        if call.with_agent:
            return DeliveryResult(
                ok=False,
                error="The caller is on the phone with the agent; typed text is not read out.",
                retryable=False,
            )
        call.pending.append(_Utterance(self._spoken(message, call.language), message.handoff))
        if message.handoff and call.turn is not None:
            call.turn.done.set()  # nothing follows the handoff notice in a turn
        return DeliveryResult(ok=True, provider_message_id=f"{call.sid}:said:{next(call.said)}")

    async def typing(
        self, address: CustomerAddress, conversation_id: int, author: str, typing: bool
    ) -> None:
        # The router stops "typing" after a turn's last reply: the caller's answer is complete.
        if author != Author.BOT or typing:
            return
        call = self._calls.get(address.address)
        if call is not None and call.turn is not None:
            call.turn.done.set()

    async def agent_assigned(self, assignment: AgentAssignment) -> None:
        """Redirect the caller (holding in the queue) to `…/voice/connect` for this agent."""
        call = self._calls.get(assignment.address.address)
        sid = call.sid if call is not None else _call_sid(assignment.last_channel_message_id)
        if sid is None:
            log.warning("voice conversation %s has no call to connect", assignment.conversation_id)
            return
        language = (
            call.language if call is not None else _language_by_number(assignment.address.address)
        )
        url = self._url(
            CONNECT_PATH,
            conversation=assignment.conversation_id,
            agent=assignment.agent_id,
            lang=language,
        )
        # In a task: a slow Twilio must not hold up the agent's accept.
        task = asyncio.create_task(self._redirect(sid, url), name=f"voice-connect-{sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _redirect(self, call_sid: str, url: str) -> None:
        """Point the live call at `url` with Twilio's Calls API (it leaves the queue)."""
        twilio = self._twilio
        api = f"{twilio.api_url}/2010-04-01/Accounts/{twilio.account_sid}/Calls/{call_sid}.json"
        auth = {"Authorization": aiohttp.encode_basic_auth(twilio.account_sid, twilio.auth_token)}
        try:
            async with self._session().post(
                api, data={"Url": url, "Method": "POST"}, headers=auth
            ) as response:
                if response.status == 200:
                    log.info("twilio voice: call %s is being put through", call_sid)
                    return
                detail = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            detail = type(error).__name__
        # Mostly 21220: the caller hung up meanwhile; the agent sees the conversation anyway.
        log.warning("twilio voice: could not put call %s through: %s", call_sid, detail)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def _twilio(self) -> TwilioSettings:
        return twilio_settings(self.context.settings)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=self._twilio.timeout_seconds)
            self._http = aiohttp.ClientSession(timeout=timeout)
        return self._http

    def _url(self, path: str, **query: str | int) -> str:
        """The public URL Twilio is to call back (and sign): the proxy's address + path."""
        base = (self.context.settings.public_url or "").rstrip("/")
        return f"{base}{path}?{urlencode(query)}" if query else base + path

    def _address(self, caller: str) -> str:
        return normalise_address(self.name, caller, self.context.settings.default_region)

    @staticmethod
    def _call_form(form: MultiDictProxy[str]) -> _CallForm:
        sid, caller = form.get("CallSid", "").strip(), form.get("From", "").strip()
        if not sid.startswith("CA") or not caller:
            raise InvalidInput("CallSid and From are required: this is not a Twilio call.")
        return _CallForm(sid, caller)

    def _call(self, caller: _CallForm, query: Mapping[str, str]) -> _Call:
        """This call's state; recreated from the signed URL after a restart or elsewhere."""
        address = self._address(caller.caller)
        call = self._calls.get(address)
        if call is None or call.sid != caller.sid:
            call = _Call(caller.sid, address, _language(query))
            self._calls[address] = call
        return call

    async def _greeting_language(self, address: str) -> str:
        known = None
        if self.context.known_language is not None:
            known = await self.context.known_language(CustomerAddress(self.name, address))
        return known if known in VOICES else _language_by_number(address)

    @staticmethod
    def _spoken(message: OutboundMessage, language: str) -> str:
        """The reply as read aloud: the cited articles named after the answer."""
        if not message.sources:
            return message.text
        titles = "；".join(s.title for s in message.sources)
        return f"{message.text} {VOICES[language].texts['sources']}{titles}"


def _language(query: Mapping[str, str]) -> str:
    language = query.get("lang", "")
    if language not in VOICES:
        raise InvalidInput(f"lang must be one of {sorted(VOICES)} in a voice callback URL.")
    return language


def _language_by_number(number: str) -> str:
    return "zh" if number.startswith(MANDARIN_COUNTRY_CODES) else "en"


def _positive_int(query: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = query.get(name)
    if raw is None and default is not None:
        return default
    if raw is None or not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"{name} must be a positive whole number in a voice callback URL.")
    return int(raw)


def _call_sid(channel_message_id: str | None) -> str | None:
    """The CallSid of a voice message id (`CallSid:turn`)."""
    if channel_message_id is None or not channel_message_id.startswith("CA"):
        return None
    return channel_message_id.split(":", 1)[0]
