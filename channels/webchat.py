"""Web chat (and the mobile app): the `/chat` Socket.IO namespace and the embeddable widget.

A visitor connects with `auth = {"visitor_id", "token"?}`. With a valid identity token
signed by the firm they are that customer, verified, and their thread follows them across
devices (address `customer:<id>`); without one they are an anonymous visitor (address
`visitor:<visitor_id>`). An unverified connection never reads a verified thread.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from channels.base import Channel, ChannelContext
from hub.domain import (
    Channel as ChannelName,
)
from hub.domain import (
    CustomerAddress,
    DeliveryResult,
    InboundMessage,
    MessageView,
    OutboundMessage,
    VerifiedIdentity,
)
from hub.errors import HubError, InvalidInput
from hub.identity_tokens import InvalidIdentityToken, verify_identity_token
from hub.language import SUPPORTED_LANGUAGES

log = logging.getLogger(__name__)

NAMESPACE = "/chat"
STATIC_DIR = Path(__file__).with_name("static") / "webchat"
VISITOR_ID = re.compile(r"^[A-Za-z0-9_\-]{8,128}$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9_\-.:]{1,100}$")
# Flood control per connection: a person does not send more than this; a script might.
RATE_LIMIT_MESSAGES = 20
RATE_LIMIT_WINDOW = 10.0
# A customer still typing is re-announced to the agent at most this often.
TYPING_REPEAT_SECONDS = 3.0


@dataclass
class ChatSession:
    address: CustomerAddress
    verified: VerifiedIdentity | None
    customer_name: str | None
    language: str | None
    sent_at: deque[float]
    typing: bool = False
    typing_sent_at: float = 0.0


def room_for(address: CustomerAddress) -> str:
    return f"{address.channel}:{address.address}"


def message_json(view: MessageView) -> dict[str, Any]:
    """A message as the `/chat` contract shows it to the customer."""
    client_id = None
    if view.channel_message_id and "/" in view.channel_message_id:
        client_id = view.channel_message_id.split("/", 1)[1]
    return {
        "id": view.id,
        "conversation_id": view.conversation_id,
        "author": view.author,
        "text": view.text,
        "sources": [{"id": s.id, "title": s.title} for s in view.sources],
        "handoff": view.handoff,
        "queue_position": view.queue_position,
        "created_at": view.created_at.isoformat(),
        "client_id": client_id,
    }


def outbound_json(message: OutboundMessage) -> dict[str, Any]:
    return {
        "id": message.message_id,
        "conversation_id": message.conversation_id,
        "author": message.author.value,
        "text": message.text,
        "sources": [{"id": s.id, "title": s.title} for s in message.sources],
        "handoff": message.handoff,
        "queue_position": message.queue_position,
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """The customer side of web chat; thin handlers that call the router's entry point."""

    def __init__(self, context: ChannelContext, channel: str) -> None:
        super().__init__(NAMESPACE)
        self.context = context
        self.channel = channel
        self.sessions: dict[str, ChatSession] = {}

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        visitor_id = auth.get("visitor_id")
        if not isinstance(visitor_id, str) or not VISITOR_ID.match(visitor_id):
            raise socketio.exceptions.ConnectionRefusedError(
                {
                    "code": "invalid_input",
                    "message": "auth.visitor_id must be 8-128 letters, digits, '-' or '_'.",
                }
            )
        verified, name, token_error = self._verify(auth.get("token"))
        # The firm's mobile app shares this namespace (`auth.client = "app"`); it always
        # carries the app-issued identity token, and its replies can fall back to push.
        is_app = auth.get("client") == ChannelName.APP.value
        if is_app and verified is None:
            raise socketio.exceptions.ConnectionRefusedError(
                {
                    "code": "unauthenticated",
                    "message": "The app must connect with a valid identity token in auth.token.",
                }
            )
        if verified is not None:
            channel = ChannelName.APP.value if is_app else self.channel
            address = CustomerAddress(channel, f"customer:{verified.customer_id}")
        else:
            address = CustomerAddress(self.channel, f"visitor:{visitor_id}")
        language = auth.get("language") if auth.get("language") in SUPPORTED_LANGUAGES else None
        self.sessions[sid] = ChatSession(address, verified, name, language, deque())
        await self.enter_room(sid, room_for(address))
        payload: dict[str, Any] = {
            "verified": verified is not None,
            "customer_name": name,
            "language": language,
        }
        if token_error:
            payload["token_error"] = token_error
        await self.emit("session", payload, to=sid)
        if self.context.customer_connected is not None and not is_app:
            await self.context.customer_connected(address, True)

    def _verify(self, token: Any) -> tuple[VerifiedIdentity | None, str | None, str | None]:
        if token is None or token == "":
            return None, None, None
        if not isinstance(token, str) or len(token) > 4096:
            return None, None, "the identity token is not a string"
        try:
            claim = verify_identity_token(self.context.settings.identity_secret, token)
        except InvalidIdentityToken as error:
            # Continue as an anonymous visitor: they can still get help, never account data.
            log.info("web chat identity token refused: %s", error)
            return None, None, "the identity token is not valid; continuing unverified"
        return VerifiedIdentity(customer_id=claim.customer_id, method="token"), claim.name, None

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        session = self.sessions.pop(sid, None)
        if session is None or self.context.customer_connected is None:
            return
        if session.address.channel == ChannelName.APP.value:
            return  # a closed app is still reachable by push: leaving it abandons nothing
        # Another tab of the same customer keeps them in the conversation.
        if not any(other.address == session.address for other in self.sessions.values()):
            await self.context.customer_connected(session.address, False)

    async def on_typing(self, sid: str, data: Any) -> dict[str, Any]:
        """Show the agent that the customer is (or stopped) typing: `{"typing": bool}`."""
        session = self.sessions.get(sid)
        if session is None:
            return {"error": {"code": "unauthenticated", "message": "Connect to /chat first."}}
        typing = data.get("typing") if isinstance(data, dict) else None
        if not isinstance(typing, bool):
            return {
                "error": {
                    "code": "invalid_input",
                    "message": 'Send {"typing": true} or {"typing": false}.',
                }
            }
        now = time.monotonic()
        repeat = typing and now - session.typing_sent_at >= TYPING_REPEAT_SECONDS
        if self.context.customer_typing is not None and (typing != session.typing or repeat):
            session.typing, session.typing_sent_at = typing, now
            await self.context.customer_typing(session.address, typing)
        return {"ok": True}

    async def on_message(self, sid: str, data: Any) -> dict[str, Any]:
        session = self.sessions.get(sid)
        if session is None:
            return {"error": {"code": "unauthenticated", "message": "Connect to /chat first."}}
        try:
            inbound = self._parse(session, data)
            self._check_rate(session)
            receipt = await self.context.accept(inbound)
        except HubError as error:
            return {"error": {"code": error.code, "message": error.message}}
        session.typing = False  # a sent message ends the typing the agent was shown
        return {"id": receipt.message_id, "conversation_id": receipt.conversation_id}

    def _parse(self, session: ChatSession, data: Any) -> InboundMessage:
        if not isinstance(data, dict):
            raise InvalidInput('Send {"text": ..., "client_id": ...}.')
        text, client_id = data.get("text"), data.get("client_id")
        if not isinstance(text, str):
            raise InvalidInput("text must be a string.")
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            raise InvalidInput("client_id must be 1-100 letters, digits or '-_.:'.")
        return InboundMessage(
            address=session.address,
            text=text.strip(),
            # Scoped by address so one visitor's client ids can never collide with another's.
            channel_message_id=f"{session.address.address}/{client_id}",
            verified=session.verified,
            display_name=session.customer_name,
            language=session.language,
        )

    @staticmethod
    def _check_rate(session: ChatSession) -> None:
        now = time.monotonic()
        while session.sent_at and now - session.sent_at[0] > RATE_LIMIT_WINDOW:
            session.sent_at.popleft()
        if len(session.sent_at) >= RATE_LIMIT_MESSAGES:
            raise RateLimited("You are sending messages very quickly; please wait a few seconds.")
        session.sent_at.append(now)

    async def on_verify_start(self, sid: str, data: Any) -> dict[str, Any]:
        """Text a one-time code to the phone number the visitor gives (OTP step-up)."""
        session = self.sessions.get(sid)
        verifier = self.context.verify_phone
        if session is None or verifier is None:
            return _not_available(session)
        phone = data.get("phone") if isinstance(data, dict) else None
        try:
            if not isinstance(phone, str) or not 5 <= len(phone) <= 32:
                raise InvalidInput('Send {"phone": "+86 138 0000 0000"}.')
            expires_at = await verifier.start_verification(session.address, phone, session.language)
        except HubError as error:
            return {"error": {"code": error.code, "message": error.message}}
        return {"ok": True, "expires_at": expires_at.isoformat()}

    async def on_verify_code(self, sid: str, data: Any) -> dict[str, Any]:
        """Check the code; from now on this connection is the verified customer."""
        session = self.sessions.get(sid)
        verifier = self.context.verify_phone
        if session is None or verifier is None:
            return _not_available(session)
        code = data.get("code") if isinstance(data, dict) else None
        try:
            if not isinstance(code, str):
                raise InvalidInput('Send {"code": "123456"}.')
            session.verified = await verifier.check_verification(session.address, code)
        except HubError as error:
            return {"error": {"code": error.code, "message": error.message}}
        return {"ok": True, "verified": True, "method": session.verified.method}

    async def on_history(self, sid: str, *_: Any) -> list[dict[str, Any]] | dict[str, Any]:
        session = self.sessions.get(sid)
        if session is None:
            return {"error": {"code": "unauthenticated", "message": "Connect to /chat first."}}
        return [message_json(view) for view in await self.context.history(session.address)]


def _not_available(session: ChatSession | None) -> dict[str, Any]:
    if session is None:
        return {"error": {"code": "unauthenticated", "message": "Connect to /chat first."}}
    return {
        "error": {
            "code": "service_unavailable",
            "message": "Verification by SMS is not available here.",
        }
    }


class RateLimited(HubError):
    code = "rate_limited"
    http_status = 429


class WebChatChannel(Channel):
    """Web chat and in-app chat over Socket.IO, plus the widget's static files."""

    name = ChannelName.WEBCHAT.value
    # A Socket.IO emit either reaches the connected customer now or they read it back with
    # `history` on their next connect: nothing to retry, so no outbox.
    uses_outbox = False

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self.namespace = ChatNamespace(context, self.name)
        context.sio.register_namespace(self.namespace)

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/", self._static("demo.html", "text/html"))
        app.router.add_get("/widget.js", self._static("widget.js", "application/javascript"))
        if (STATIC_DIR / "widget.css").exists():
            app.router.add_get("/widget.css", self._static("widget.css", "text/css"))

    @staticmethod
    def _static(filename: str, content_type: str) -> Any:
        path = STATIC_DIR / filename

        async def handler(_: web.Request) -> web.StreamResponse:
            if not path.exists():
                raise web.HTTPNotFound()
            return web.FileResponse(
                path, headers={"Content-Type": f"{content_type}; charset=utf-8"}
            )

        return handler

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        await self.context.sio.emit(
            "message", outbound_json(message), room=room_for(message.address), namespace=NAMESPACE
        )
        return DeliveryResult(ok=True)

    async def typing(
        self, address: CustomerAddress, conversation_id: int, author: str, typing: bool
    ) -> None:
        await self.context.sio.emit(
            "typing",
            {"conversation_id": conversation_id, "author": author, "typing": typing},
            room=room_for(address),
            namespace=NAMESPACE,
        )
