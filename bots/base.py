"""The `Bot` interface every bot backend implements, and what a bot answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hub.domain import CustomerContext, HandoffContext, Source


@dataclass(frozen=True)
class BotReply:
    """A bot's answer to one customer message.

    `texts` are sent in order. With `handoff` set the conversation goes to a human queue;
    `handoff_text` is then said last, with `{position}` replaced by the queue position.
    `missed` is true when the bot could not help (out of scope, not understood), so the
    router can count consecutive misses and the bot can escalate on repeat. `topic` (the
    cited article's category, say) becomes the conversation's topic, which FCR and routing
    use; without it the intent stands in, except for small talk.
    """

    texts: tuple[str, ...]
    language: str
    intent: str | None = None
    confidence: float | None = None
    sources: tuple[Source, ...] = ()
    handoff: HandoffContext | None = None
    handoff_text: str | None = None
    missed: bool = False
    bot: str = "embedded"
    topic: str | None = None  # what the conversation is about: a KB category or an intent


class Bot(Protocol):
    """A conversational backend: the embedded bot, Rasa, or a fallback wrapper of both."""

    name: str

    async def respond(self, text: str, context: CustomerContext) -> BotReply:
        """Answer one customer message; never raise for ordinary input."""
        ...
