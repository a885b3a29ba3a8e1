"""A bot that asks a primary bot (Rasa) and, when it fails or is slow, a fallback (embedded).

Customers must notice nothing but a slightly different bot when Rasa is down: every message
is answered, by Rasa within the timeout or else by the embedded bot. A circuit breaker stops
sending to a Rasa that keeps failing (each failed call costs the customer the full timeout),
and after a cool-down lets one message probe whether it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from bots.base import Bot, BotReply
from bots.rasa_client import RasaBadReply, RasaUnavailable
from hub.domain import CustomerContext

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0
DEFAULT_FAILURES_TO_OPEN = 3
DEFAULT_COOL_DOWN = 30.0


class CircuitState(StrEnum):
    CLOSED = "closed"  # Rasa answers
    OPEN = "open"  # Rasa is skipped until the cool-down has passed
    HALF_OPEN = "half_open"  # one message is probing Rasa


class CircuitBreaker:
    """Open after `failures_to_open` failures in a row; probe once per `cool_down` seconds."""

    def __init__(
        self,
        failures_to_open: int = DEFAULT_FAILURES_TO_OPEN,
        cool_down: float = DEFAULT_COOL_DOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_to_open < 1 or cool_down < 0:
            raise ValueError("failures_to_open must be ≥ 1 and cool_down ≥ 0")
        self.failures_to_open = failures_to_open
        self.cool_down = cool_down
        self._clock = clock
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._opened_at = 0.0

    def allow(self) -> bool:
        """Tell whether this call may go to the primary; opening a probe when it is time."""
        if self.state == CircuitState.CLOSED:
            return True
        # A probe that never reported back (its task was cancelled) must not block the next one.
        if self._clock() - self._opened_at >= self.cool_down:
            self.state = CircuitState.HALF_OPEN  # this caller is the probe; others wait it out
            self._opened_at = self._clock()
            return True
        return False

    def record_success(self) -> None:
        if self.state != CircuitState.CLOSED:
            log.info("circuit closed: the primary bot answers again")
        self.state = CircuitState.CLOSED
        self.failures = 0

    def record_failure(self) -> None:
        self.failures += 1
        if self.state == CircuitState.HALF_OPEN or self.failures >= self.failures_to_open:
            if self.state != CircuitState.OPEN:
                log.warning(
                    "circuit open after %d failure(s): the fallback bot answers for %.0f s",
                    self.failures,
                    self.cool_down,
                )
            self.state = CircuitState.OPEN
            self._opened_at = self._clock()


class FallbackBot:
    """Answer with `primary` within `timeout`; otherwise with `fallback`, and say why in the log."""

    def __init__(
        self,
        primary: Bot,
        fallback: Bot,
        timeout: float = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("the primary bot's timeout must be positive")
        self.primary = primary
        self.fallback = fallback
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.name = f"{primary.name}+{fallback.name}"
        self.answered = {primary.name: 0, fallback.name: 0}
        self.last_fallback_reason: str | None = None

    async def respond(self, text: str, context: CustomerContext) -> BotReply:
        """Answer one customer message; never leave it unanswered because the primary failed."""
        reason = await self._try_primary(text, context)
        if isinstance(reason, BotReply):
            self.answered[self.primary.name] += 1
            log.info(
                "%s answered conversation %s (intent %s)",
                self.primary.name,
                context.conversation_id,
                reason.intent,
            )
            return reason
        log.warning(
            "%s did not answer conversation %s (%s); the %s bot answers",
            self.primary.name,
            context.conversation_id,
            reason,
            self.fallback.name,
        )
        self.last_fallback_reason = reason
        reply = await self.fallback.respond(text, context)
        self.answered[self.fallback.name] += 1
        return reply

    async def _try_primary(self, text: str, context: CustomerContext) -> BotReply | str:
        """Return the primary's reply, or the reason it gave none."""
        if not self.breaker.allow():
            return "circuit open"
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self.primary.respond(text, context)
        except TimeoutError:
            self.breaker.record_failure()
            return f"no reply within {self.timeout:g} s"
        except RasaUnavailable as error:
            self.breaker.record_failure()
            return str(error)
        except RasaBadReply as error:
            # The server is up and answering, so this is no reason to stop asking it.
            self.breaker.record_success()
            return f"unusable reply: {error}"
        except Exception as error:  # a bug must not cost the customer an answer either
            log.exception("%s failed unexpectedly", self.primary.name)
            self.breaker.record_failure()
            return f"error: {error!r}"
        self.breaker.record_success()
        return reply

    def status(self) -> dict[str, Any]:
        """What /healthz reports about the bots."""
        return {
            "primary": self.primary.name,
            "fallback": self.fallback.name,
            "circuit": self.breaker.state.value,
            "consecutive_failures": self.breaker.failures,
            "answered": dict(self.answered),
        }
