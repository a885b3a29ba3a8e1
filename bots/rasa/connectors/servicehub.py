"""The channel the hub talks to Rasa through: Rasa's REST channel behind a bearer token.

Rasa's own `--auth-token` guards only its HTTP API, never the channel webhooks, and the stock
REST webhook takes any sender id. The hub sends the conversation id as the sender id, so
anyone able to reach an open webhook could write into a customer's conversation. This
channel refuses every request that lacks `Authorization: Bearer <SERVICEHUB_RASA_TOKEN>`.

Configured in credentials.yml as `connectors.servicehub.ServicehubInput`; the webhook is
`POST /webhooks/servicehub/webhook` with the REST channel's body
`{"sender", "message", "metadata"}`. Runs inside the Rasa server (Python 3.10).
"""

from __future__ import annotations

import hmac
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

MIN_TOKEN_CHARS = 16


class ServicehubInput(RestInput):
    """Rasa's REST input channel, authenticated with the hub's shared token."""

    def __init__(self, token: Text) -> None:
        if not token or len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                "The servicehub channel needs a token of at least "
                f"{MIN_TOKEN_CHARS} characters (SERVICEHUB_RASA_TOKEN in credentials.yml)."
            )
        self._token = token.encode("utf-8")

    @classmethod
    def name(cls) -> Text:
        return "servicehub"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "ServicehubInput":
        if not credentials or not credentials.get("token"):
            cls.raise_missing_credentials_exception()
        return cls(str(credentials["token"]))

    def get_metadata(self, request: Request) -> Optional[Dict[Text, Any]]:
        """Pass the hub's customer context on to the tracker; ignore anything not a mapping."""
        metadata = (request.json or {}).get("metadata")
        return metadata if isinstance(metadata, dict) else None

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        """Serve the REST channel's routes, each behind the token check."""
        blueprint = super().blueprint(on_new_message)

        @blueprint.middleware("request")
        async def require_token(request: Request) -> Optional[HTTPResponse]:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return response.json(
                    {"code": "unauthenticated", "message": "Send 'Authorization: Bearer <token>'."},
                    status=401,
                )
            if not hmac.compare_digest(token.strip().encode("utf-8"), self._token):
                return response.json(
                    {"code": "forbidden", "message": "That is not the channel's token."},
                    status=403,
                )
            return None

        return blueprint
