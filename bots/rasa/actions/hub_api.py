"""The hub's bot-facing API as the custom actions call it: KB answers and the customer's holdings.

Every call carries the bot service token and a short timeout: Rasa waits up to 300 s for an
action, while the hub gives Rasa a few seconds for the whole turn, so a slow hub must fail
fast here and let the action hand off instead.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp

DEFAULT_TIMEOUT = 2.0  # seconds for one call to the hub, connection included
TURN_HEADER = "X-Servicehub-Turn"


class HubUnavailable(Exception):
    """The hub did not answer in time, or answered with a server error."""


class HubRefused(Exception):
    """The hub refused the request (4xx); `code` is its error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"hub refused with {status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True)
class KbAnswer:
    """What the hub's KB search and answer gate say about one question."""

    answerable: bool
    text: Optional[str]
    sources: Tuple[Dict[str, str], ...]
    skill: str
    topic: Optional[str]
    confidence: float
    signals: Dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HoldingsView:
    """The verified customer's own products, account numbers already masked by the hub."""

    customer_name: Optional[str]
    items: Tuple[Dict[str, Any], ...]


class HubClient:
    """Calls the hub's `/api/bot/...` routes with the service token."""

    def __init__(self, base_url: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @classmethod
    def from_env(cls) -> "HubClient":
        """Configure from SERVICEHUB_URL, SERVICEHUB_BOT_SERVICE_TOKEN, SERVICEHUB_HUB_TIMEOUT."""
        url = os.environ.get("SERVICEHUB_URL", "").strip()
        token = os.environ.get("SERVICEHUB_BOT_SERVICE_TOKEN", "").strip()
        if not url or not token:
            raise RuntimeError(
                "The action server needs SERVICEHUB_URL (the hub's base URL) and "
                "SERVICEHUB_BOT_SERVICE_TOKEN; `servicehub rasa serve` sets both."
            )
        timeout = float(os.environ.get("SERVICEHUB_HUB_TIMEOUT") or DEFAULT_TIMEOUT)
        return cls(url, token, timeout)

    async def kb_answer(
        self,
        question: str,
        conversation_id: str,
        language: str,
        intent: Optional[str],
        record_unanswered: bool,
    ) -> KbAnswer:
        """Search the KB through the hub; the text is set only when the hub's gate passes."""
        params = {
            "q": question,
            "conversation_id": conversation_id,
            "language": language,
            "record": "1" if record_unanswered else "0",
        }
        if intent:
            params["intent"] = intent
        body = await self._get("/api/bot/kb/answer", params, {})
        return KbAnswer(
            answerable=bool(body.get("answerable")),
            text=body.get("text"),
            sources=tuple(
                {"id": str(s["id"]), "title": str(s["title"])} for s in body.get("sources") or []
            ),
            skill=str(body.get("skill") or "general"),
            topic=body.get("topic"),
            confidence=float(body.get("confidence") or 0.0),
            signals={str(k): float(v) for k, v in (body.get("signals") or {}).items()},
        )

    async def holdings(
        self, conversation_id: str, kinds: Sequence[str], turn_grant: str
    ) -> HoldingsView:
        """Read the conversation's customer's holdings; the hub checks they are verified."""
        params: List[Tuple[str, str]] = [("kind", kind) for kind in kinds]
        body = await self._get(
            f"/api/bot/conversations/{conversation_id}/holdings",
            params,
            {TURN_HEADER: turn_grant},
        )
        customer = body.get("customer") or {}
        return HoldingsView(
            customer_name=customer.get("name"),
            items=tuple(body.get("holdings") or []),
        )

    async def _get(self, path: str, params: Any, headers: Dict[str, str]) -> Dict[str, Any]:
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as session:
                async with session.get(
                    self.base_url + path,
                    params=params,
                    headers={"Authorization": f"Bearer {self._token}", **headers},
                ) as response:
                    body = await response.json(content_type=None)
                    status = response.status
        # On Python 3.10 asyncio.TimeoutError is not the builtin TimeoutError.
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            raise HubUnavailable(f"{path}: {error!r}") from error
        if status >= 500 or not isinstance(body, dict):
            raise HubUnavailable(f"{path}: HTTP {status}")
        if status >= 400:
            raise HubRefused(status, str(body.get("code")), str(body.get("message")))
        return body
