"""The Rasa bot: a `Bot` that sends each customer message to a Rasa server over HTTP.

The hub posts to the servicehub channel's webhook (`bots/rasa/connectors/servicehub.py`:
Rasa's REST channel behind a bearer token) with the conversation id as Rasa's sender id and
the customer context as `metadata`; the custom actions set Rasa's slots from it. Rasa's
replies map onto one `BotReply`: texts in order (buttons and images degrade to text lines),
and the actions' custom payloads carry what the hub acts on — cited sources, the topic, a
miss, or a handoff with its context.

Failures raise `RasaUnavailable` (Rasa unreachable or erroring) or `RasaBadReply` (Rasa
answered, but nothing usable); `bots.fallback.FallbackBot` then lets the embedded bot answer.
Timeouts are the fallback wrapper's business.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bots.base import BotReply
from bots.project import RASA_DIR, RasaProject, load_project
from bots.turn_grants import TurnGrants
from hub.domain import CustomerContext, HandoffContext, Source
from hub.language import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/servicehub/webhook"
# A backstop only: FallbackBot gives Rasa a much shorter budget per message.
SESSION_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=5)
MAX_ERROR_BODY = 200


class RasaUnavailable(Exception):
    """Rasa could not be reached, or answered with an error status."""


class RasaBadReply(Exception):
    """Rasa answered, but with nothing the hub can send (no text, malformed payload)."""


class RasaBot:
    """Talks to a Rasa server's servicehub channel; open() before use, close() after."""

    name = "rasa"

    def __init__(
        self, url: str, token: str, grants: TurnGrants, project_dir: Path = RASA_DIR
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the Rasa URL must be http(s)://…, not {url!r}")
        self.url = url.rstrip("/")
        self._token = token
        self._grants = grants
        self._project_dir = project_dir
        self._project: RasaProject | None = None
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Read the shared project files (for the queue notice) and open the HTTP session."""
        if self._project is None:
            self._project = load_project(self._project_dir)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=SESSION_TIMEOUT)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def respond(self, text: str, context: CustomerContext) -> BotReply:
        """Send one customer message to Rasa and map its replies."""
        if self._session is None or self._project is None:
            raise RasaUnavailable("the Rasa client is not open")
        body = {
            "sender": str(context.conversation_id),
            "message": text,
            "metadata": self.metadata(context),
        }
        try:
            async with self._session.post(
                self.url + WEBHOOK_PATH,
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError) as error:
            raise RasaUnavailable(f"cannot reach Rasa at {self.url}: {error!r}") from error
        if status != 200:
            snippet = raw[:MAX_ERROR_BODY].decode("utf-8", "replace")
            raise RasaUnavailable(f"Rasa answered HTTP {status}: {snippet}")
        try:
            messages = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RasaBadReply(f"Rasa's reply is not JSON: {error}") from error
        return reply_from_rasa(messages, context, self._project)

    def metadata(self, context: CustomerContext) -> dict[str, Any]:
        """The customer context Rasa's actions may use; names only for verified customers."""
        return {
            "conversation_id": context.conversation_id,
            "channel": context.channel,
            "language": _language(context.language),
            "verified": context.verified,
            "customer_name": context.display_name if context.verified else None,
            "segment": context.segment,
            "topic": context.topic,
            "consecutive_misses": context.consecutive_misses,
            "articles_shown": [{"id": s.id, "title": s.title} for s in context.articles_shown],
            "turn_grant": self._grants.issue(context.conversation_id),
        }


def reply_from_rasa(messages: Any, context: CustomerContext, project: RasaProject) -> BotReply:
    """Map the REST channel's list of bot messages onto one `BotReply`."""
    if not isinstance(messages, list):
        raise RasaBadReply(f"Rasa's reply must be a list of messages, not {type(messages)}")
    texts: list[str] = []
    payload = _Payload()
    for message in messages:
        if not isinstance(message, dict):
            raise RasaBadReply(f"a Rasa message must be an object, not {message!r:.80}")
        texts.extend(_texts_of(message))
        custom = message.get("custom")
        if custom is not None:
            payload.absorb(custom)
    if not texts and payload.handoff is None:
        raise RasaBadReply("Rasa sent no text (is the action server running?)")
    language = _language(context.language)
    handoff_text = None
    if payload.handoff is not None:
        handoff_text = project.render(project.handoff.queue_response, language)
    return BotReply(
        texts=tuple(texts),
        language=language,
        intent=payload.intent,
        confidence=payload.confidence,
        sources=tuple(payload.sources),
        handoff=payload.handoff,
        handoff_text=handoff_text,
        missed=payload.missed,
        bot=RasaBot.name,
        topic=payload.topic,
    )


def _texts_of(message: Mapping[str, Any]) -> list[str]:
    """The text of one Rasa message; buttons become lines, an image its URL (channels are text)."""
    parts: list[str] = []
    text = message.get("text")
    if isinstance(text, str) and text.strip():
        parts.append(text)
    buttons = message.get("buttons")
    if isinstance(buttons, list):
        titles = [str(b.get("title")) for b in buttons if isinstance(b, dict) and b.get("title")]
        if titles:
            lines = "\n".join(f"• {title}" for title in titles)
            parts[-1:] = [f"{parts[-1]}\n{lines}"] if parts else [lines]
    image = message.get("image")
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        parts.append(image)
    return parts


class _Payload:
    """What the actions' custom payloads said this turn; later payloads win."""

    def __init__(self) -> None:
        self.intent: str | None = None
        self.confidence: float | None = None
        self.sources: list[Source] = []
        self.topic: str | None = None
        self.missed = False
        self.handoff: HandoffContext | None = None

    def absorb(self, custom: Any) -> None:
        if not isinstance(custom, dict):
            raise RasaBadReply(f"a custom payload must be an object, not {custom!r:.80}")
        if isinstance(custom.get("intent"), str):
            self.intent = custom["intent"]
        if isinstance(custom.get("confidence"), int | float):
            self.confidence = float(custom["confidence"])
        self.sources.extend(_sources(custom.get("sources") or []))
        if isinstance(custom.get("topic"), str) and custom["topic"]:
            self.topic = custom["topic"]
        self.missed = self.missed or custom.get("missed") is True
        if custom.get("handoff") is not None:
            self.handoff = _handoff(custom["handoff"])


def _sources(raw: Any) -> list[Source]:
    if not isinstance(raw, list):
        raise RasaBadReply("`sources` must be a list of {id, title}")
    out = []
    for item in raw:
        valid = isinstance(item, dict) and item.get("id") and isinstance(item.get("title"), str)
        if not valid:
            raise RasaBadReply(f"a source needs an id and a title, not {item!r:.80}")
        out.append(Source(id=str(item["id"]), title=item["title"]))
    return out


def _handoff(raw: Any) -> HandoffContext:
    """Validate the handoff payload; the hub routes on it, so a bad one is refused."""
    if not isinstance(raw, dict):
        raise RasaBadReply("`handoff` must be an object")
    for key in ("reason", "skill"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise RasaBadReply(f"a handoff needs a `{key}`")
    signals = raw.get("signals") or {}
    if not isinstance(signals, dict) or not all(
        isinstance(v, int | float) for v in signals.values()
    ):
        raise RasaBadReply("handoff `signals` must map names to numbers")
    confidence = raw.get("confidence")
    intent = raw.get("intent")
    return HandoffContext(
        reason=raw["reason"],
        skill=raw["skill"],
        intent=intent if isinstance(intent, str) else None,
        confidence=float(confidence) if isinstance(confidence, int | float) else None,
        articles_shown=tuple(_sources(raw.get("articles_shown") or [])),
        summary=str(raw.get("summary") or ""),
        bot=RasaBot.name,
        signals={str(k): float(v) for k, v in signals.items()},
    )


def _language(language: str | None) -> str:
    base = (language or DEFAULT_LANGUAGE)[:2].lower()
    return base if base in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE
