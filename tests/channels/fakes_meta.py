"""A local stand-in for Meta's Graph API (WhatsApp Cloud and Messenger Send API).

It checks what the real API checks before accepting a message — the access token, the
phone number id, the fields each message type requires, that a template is one of the
approved ones — answers in Graph's own shapes (including its error bodies), records what
was sent, and can be told to fail. Webhook requests are built as Meta builds them and
signed with the real algorithm (HMAC-SHA256 of the raw body with the app secret).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.channels.fake_server import FakeProvider, serve_on_loopback

APP_SECRET = "meta-app-secret-for-tests"
VERIFY_TOKEN = "meta-verify-token-for-tests"
WHATSAPP_TOKEN = "EAAG-whatsapp-system-user-token"
PAGE_TOKEN = "EAAG-messenger-page-token"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
PAGE_ID = "1234567890123"
GRAPH_VERSION = "v19.0"
APPROVED_TEMPLATES = {("service_followup", "zh_CN")}


@dataclass
class SentMessage:
    """One message the fake accepted."""

    kind: str  # "whatsapp" or "messenger"
    to: str
    body: dict[str, Any]
    message_id: str

    @property
    def text(self) -> str | None:
        if self.kind == "messenger":
            return str(self.body["message"].get("text"))
        if self.body["type"] == "text":
            return str(self.body["text"]["body"])
        return None


@dataclass
class FakeGraph(FakeProvider[SentMessage]):
    """The fake's state: what it accepted, and the failures it was told to produce."""

    refused: list[dict[str, Any]] = field(default_factory=list)
    fail_status: int | None = None  # answer every send with this HTTP status while set
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def accept(self, kind: str, to: str, body: dict[str, Any], prefix: str) -> str:
        message_id = f"{prefix}{next(self._ids):08d}"
        self.sent.append(SentMessage(kind, to, body, message_id))
        self._arrived.set()
        return message_id


def _error(status: int, code: int, message: str, kind: str = "OAuthException") -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}},
        status=status,
    )


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :]
    return request.query.get("access_token")  # Graph takes either


def build_app(state: FakeGraph) -> web.Application:
    async def whatsapp_messages(request: web.Request) -> web.Response:
        if state.fail_status is not None:
            return _error(state.fail_status, 2, "Service temporarily unavailable", "FacebookApi")
        if _token(request) != WHATSAPP_TOKEN:
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.match_info["phone_id"] != PHONE_NUMBER_ID:
            return _error(400, 100, "Unsupported post request.", "GraphMethodException")
        body = await request.json()
        problem = _whatsapp_problem(body)
        if problem is not None:
            state.refused.append(body)
            return _error(400, 100, problem, "OAuthException")
        message_id = state.accept("whatsapp", body["to"], body, "wamid.HBgNODYxMzgw")
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": message_id}],
            }
        )

    async def messenger_messages(request: web.Request) -> web.Response:
        if state.fail_status is not None:
            return _error(state.fail_status, 2, "Service temporarily unavailable", "FacebookApi")
        if _token(request) != PAGE_TOKEN:
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        body = await request.json()
        problem = _messenger_problem(body)
        if problem is not None:
            state.refused.append(body)
            return _error(400, 100, problem)
        recipient = body["recipient"]["id"]
        message_id = state.accept("messenger", recipient, body, "m_")
        return web.json_response({"recipient_id": recipient, "message_id": message_id})

    app = web.Application()
    app.router.add_post(f"/{GRAPH_VERSION}/me/messages", messenger_messages)
    app.router.add_post(f"/{GRAPH_VERSION}/{{phone_id}}/messages", whatsapp_messages)
    return app


def _whatsapp_problem(body: Any) -> str | None:
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "(#100) The parameter messaging_product is required."
    to = body.get("to")
    if not isinstance(to, str) or not to.isdigit():
        return "(#100) Invalid parameter: to must be a phone number in international format"
    kind = body.get("type", "text")
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str):
            return "(#100) The parameter text['body'] is required."
        if not text["body"] or len(text["body"]) > 4096:
            return "(#100) Param text['body'] must be 1 to 4096 characters long."
        return None
    if kind == "template":
        template = body.get("template") or {}
        key = (template.get("name"), (template.get("language") or {}).get("code"))
        if key not in APPROVED_TEMPLATES:
            return f"(#132001) Template name does not exist in the translation: {key}"
        for component in template.get("components", []):
            for parameter in component.get("parameters", []):
                text = parameter.get("text", "")
                if "\n" in text or "\t" in text or "     " in text or len(text) > 1024:
                    return "(#132018) There's an issue with the parameters in your template."
        return None
    return f"(#100) Unsupported message type {kind}"


def _messenger_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "(#100) The body must be JSON"
    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not isinstance(recipient.get("id"), str):
        return "(#100) The parameter recipient is required"
    kind = body.get("messaging_type")
    if kind not in {"RESPONSE", "UPDATE", "MESSAGE_TAG"}:
        return "(#100) The parameter messaging_type is required"
    if kind == "MESSAGE_TAG" and body.get("tag") != "HUMAN_AGENT":
        return "(#100) Tag is required for MESSAGE_TAG messaging type"
    message = body.get("message")
    text = message.get("text") if isinstance(message, dict) else None
    if not isinstance(text, str) or not text or len(text) > 2000:
        return "(#100) param message[text] must be a UTF-8 string of 1 to 2000 characters"
    return None


def fake_graph() -> AbstractAsyncContextManager[FakeGraph]:
    """Run the fake Graph API on a loopback port."""
    return serve_on_loopback(FakeGraph(), build_app)


# -- webhooks as Meta sends them -----------------------------------------------------------


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_webhook(
    base_url: str,
    channel: str,
    payload: Any,
    *,
    secret: str | None = APP_SECRET,
    signature: str | None = None,
) -> tuple[int, Any]:
    """POST a webhook body as Meta does (compact JSON, signed); return (status, JSON body)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = sign(body, secret)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/channels/{channel}/webhook", data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def whatsapp_webhook(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    contacts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One `whatsapp_business_account` webhook with one change, as the Cloud API sends it."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
    }
    if messages is not None:
        value["contacts"] = contacts or [
            {"profile": {"name": "Customer"}, "wa_id": m["from"]} for m in messages
        ]
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def whatsapp_text(
    wa_id: str, text: str, message_id: str, timestamp: float | None = None
) -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": message_id,
        "timestamp": str(int(time.time() if timestamp is None else timestamp)),
        "text": {"body": text},
        "type": "text",
    }


def whatsapp_status(message_id: str, status: str, wa_id: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": wa_id,
    }
    if status == "failed":
        item["errors"] = [
            {
                "code": 131026,
                "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "Message Undeliverable."},
            }
        ]
    return item


def messenger_webhook(events: list[dict[str, Any]]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": now, "messaging": events}]}


def messenger_text(psid: str, text: str, mid: str, *, echo: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "text": text}
    sender, recipient = (PAGE_ID, psid) if echo else (psid, PAGE_ID)
    if echo:
        message["is_echo"] = True
        message["app_id"] = 1517776481860111
    return {
        "sender": {"id": sender},
        "recipient": {"id": recipient},
        "timestamp": int(time.time() * 1000),
        "message": message,
    }
