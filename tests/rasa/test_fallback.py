"""The fallback wrapper and its circuit breaker, with bots that fail in each way Rasa can."""

from __future__ import annotations

import asyncio

import pytest

from bots.base import BotReply
from bots.fallback import CircuitBreaker, CircuitState, FallbackBot
from bots.rasa_client import RasaBadReply, RasaUnavailable
from hub.domain import CustomerContext

CONTEXT = CustomerContext(
    customer_id=1, conversation_id=3, channel="webchat", verified=False, language="en"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedBot:
    """A `Bot` whose next answers are scripted: a reply, an exception, or a delay."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.behaviour: str = "answer"

    async def respond(self, text: str, context: CustomerContext) -> BotReply:
        self.calls += 1
        if self.behaviour == "down":
            raise RasaUnavailable("connection refused")
        if self.behaviour == "bad":
            raise RasaBadReply("no text")
        if self.behaviour == "slow":
            await asyncio.sleep(10)
        if self.behaviour == "bug":
            raise KeyError("oops")
        return BotReply(texts=(f"{self.name}: {text}",), language="en", bot=self.name)


def state(breaker: CircuitBreaker) -> CircuitState:
    """Read the state afresh (mypy would keep an earlier comparison's narrowing)."""
    return breaker.state


def test_breaker_opens_after_n_failures_and_probes_once_after_the_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures_to_open=3, cool_down=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert state(breaker) == CircuitState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) == CircuitState.OPEN
    assert not breaker.allow()
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()  # the probe
    assert state(breaker) == CircuitState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record_failure()  # the probe failed: open again, for another cool-down
    assert state(breaker) == CircuitState.OPEN and not breaker.allow()
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) == CircuitState.CLOSED and breaker.failures == 0
    assert breaker.allow()


def test_a_success_resets_the_count_of_failures() -> None:
    breaker = CircuitBreaker(failures_to_open=2, cool_down=30, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert state(breaker) == CircuitState.CLOSED


def test_a_probe_whose_task_vanished_does_not_block_later_probes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures_to_open=1, cool_down=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()  # a probe starts and is cancelled: it never reports back
    clock.now += 10
    assert breaker.allow()


async def test_the_primary_answers_when_it_can() -> None:
    rasa, embedded = ScriptedBot("rasa"), ScriptedBot("embedded")
    bot = FallbackBot(rasa, embedded, timeout=1)
    reply = await bot.respond("hello", CONTEXT)
    assert reply.bot == "rasa" and embedded.calls == 0
    assert bot.status()["answered"] == {"rasa": 1, "embedded": 0}


@pytest.mark.parametrize("behaviour", ["down", "slow", "bug", "bad"])
async def test_every_failure_of_the_primary_is_answered_by_the_fallback(
    behaviour: str, caplog: pytest.LogCaptureFixture
) -> None:
    rasa, embedded = ScriptedBot("rasa"), ScriptedBot("embedded")
    rasa.behaviour = behaviour
    bot = FallbackBot(rasa, embedded, timeout=0.05)
    reply = await bot.respond("hello", CONTEXT)
    assert reply.bot == "embedded" and reply.texts == ("embedded: hello",)
    assert any("the embedded bot answers" in r.getMessage() for r in caplog.records)


async def test_the_circuit_opens_so_a_dead_primary_costs_no_more_timeouts() -> None:
    clock = FakeClock()
    rasa, embedded = ScriptedBot("rasa"), ScriptedBot("embedded")
    rasa.behaviour = "slow"
    bot = FallbackBot(rasa, embedded, timeout=0.05, breaker=CircuitBreaker(2, 30, clock))
    for _ in range(5):
        assert (await bot.respond("hi", CONTEXT)).bot == "embedded"
    assert rasa.calls == 2 and embedded.calls == 5
    assert bot.status()["circuit"] == "open"
    rasa.behaviour = "answer"
    clock.now += 30
    assert (await bot.respond("hi", CONTEXT)).bot == "rasa"  # the probe, and it worked
    assert bot.status()["circuit"] == "closed"


async def test_a_bad_reply_falls_back_but_does_not_count_against_the_server() -> None:
    rasa, embedded = ScriptedBot("rasa"), ScriptedBot("embedded")
    rasa.behaviour = "bad"
    bot = FallbackBot(rasa, embedded, timeout=1, breaker=CircuitBreaker(1, 30, FakeClock()))
    for _ in range(3):
        assert (await bot.respond("hi", CONTEXT)).bot == "embedded"
    assert rasa.calls == 3  # still asked: the server is up, one reply was unusable


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures_to_open=0)
    with pytest.raises(ValueError):
        FallbackBot(ScriptedBot("a"), ScriptedBot("b"), timeout=0)
