"""WeChat Official Account (微信公众号) in plaintext message mode, at `/channels/wechat/webhook`.

* GET is WeChat's URL check: `signature` = SHA-1 of the sorted, joined [token, timestamp,
  nonce]; when it matches, echo `echostr`. Every POST carries the same signature in its
  query and is refused (403, nothing read) when it does not match.
* POST bodies are XML. Text messages (and voice messages WeChat has transcribed) go into
  the pipeline with `MsgId` as the idempotency key (WeChat retries three times); a
  `subscribe` event is welcomed; everything else answers "success" so WeChat stops.
* WeChat waits 5 s for the answer to a message. If the bot answers within
  `reply_seconds` (4.5 s by default) the answer is the passive XML reply; otherwise the
  webhook answers "success" and the answer — like every agent reply — goes out later as a
  customer-service message (`/cgi-bin/message/custom/send`) with a cached access token.

An OpenID identifies the customer only to this Official Account: it stays a customer of
its own until verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from channels.base import Channel, ChannelContext
from hub.channel_settings import WeChatSettings
from hub.domain import Channel as ChannelName
from hub.domain import CustomerAddress, DeliveryResult, InboundMessage, OutboundMessage
from hub.errors import Forbidden, InvalidInput

log = logging.getLogger(__name__)

WELCOME_TEXT = (
    "欢迎关注！请直接发送您的问题，智能客服会马上为您解答；需要人工服务请回复“转人工”。\n"
    "Welcome! Send us your question; reply 'agent' to talk to a person."
)
TOKEN_MARGIN_SECONDS = 300  # refresh the access token this long before WeChat expires it
# errcodes: the access token is invalid or expired → fetch a new one and try once more.
TOKEN_ERRORS = {40001, 40014, 42001}
# errcodes where a later attempt may succeed (system busy, rate limits).
RETRYABLE_ERRORS = {-1, 45009, 45011}
ERROR_REASONS = {
    45015: "the customer has not written for 48 hours, so WeChat does not allow the message",
    45047: "WeChat allows at most 20 messages without an answer from the customer",
    43004: "the customer no longer follows the Official Account",
}


def signature_for(token: str, timestamp: str, nonce: str) -> str:
    """The `signature` WeChat sends: SHA-1 of the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def is_signed_by_wechat(token: str, query: Any) -> bool:
    """Check the query's `signature`/`timestamp`/`nonce` in constant time."""
    signature, timestamp, nonce = (query.get(k, "") for k in ("signature", "timestamp", "nonce"))
    if not signature or not timestamp or not nonce:
        return False
    return hmac.compare_digest(signature.encode(), signature_for(token, timestamp, nonce).encode())


@dataclass(frozen=True)
class WeChatPush:
    """The fields of a pushed message or event that we use."""

    to_user: str  # the Official Account's original id (gh_…)
    from_user: str  # the customer's OpenID
    create_time: int
    msg_type: str
    content: str | None = None
    msg_id: str | None = None
    event: str | None = None
    recognition: str | None = None


def parse_push(body: bytes) -> WeChatPush:
    """Parse WeChat's XML; refuse anything else (and any DTD, which WeChat never sends)."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise InvalidInput("XML with a document type declaration is not accepted.")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        raise InvalidInput(f"The body is not WeChat's XML: {error}.") from error

    def text(name: str) -> str | None:
        element = root.find(name)
        return element.text if element is not None and element.text is not None else None

    to_user, from_user, msg_type = text("ToUserName"), text("FromUserName"), text("MsgType")
    create_time = text("CreateTime")
    if root.tag != "xml" or not to_user or not from_user or not msg_type:
        raise InvalidInput("WeChat's XML needs ToUserName, FromUserName and MsgType.")
    if create_time is None or not create_time.strip().isdigit():
        raise InvalidInput("WeChat's XML needs a numeric CreateTime.")
    return WeChatPush(
        to_user=to_user,
        from_user=from_user,
        create_time=int(create_time),
        msg_type=msg_type,
        content=text("Content"),
        msg_id=text("MsgId"),
        event=text("Event"),
        recognition=text("Recognition"),
    )


def passive_reply(push: WeChatPush, content: str) -> str:
    """The passive text reply to `push`, as WeChat expects it."""
    return (
        "<xml>"
        f"<ToUserName>{_cdata(push.from_user)}</ToUserName>"
        f"<FromUserName>{_cdata(push.to_user)}</FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(content)}</Content>"
        "</xml>"
    )


def _cdata(value: str) -> str:
    # A "]]>" inside the text would end the section early; split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


class WeChatApiError(Exception):
    """WeChat's API answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        reason = ERROR_REASONS.get(errcode, errmsg)
        super().__init__(f"WeChat errcode {errcode}: {reason}")
        self.errcode = errcode


@dataclass
class _Waiter:
    """A webhook request still waiting for the answer to one customer message."""

    msg_id: str
    answer: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class WeChatChannel(Channel):
    """A WeChat Official Account: passive replies when quick, customer-service messages later."""

    name = ChannelName.WECHAT.value

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self.wechat: WeChatSettings | None = context.settings.wechat
        self.http: aiohttp.ClientSession | None = None
        self._waiters: dict[str, deque[_Waiter]] = {}  # OpenID → requests awaiting answers
        self._token: str | None = None
        self._token_expires = 0.0  # monotonic seconds
        self._token_lock = asyncio.Lock()

    def setup(self, app: web.Application) -> None:
        if self.wechat is None:
            return
        app.router.add_get("/channels/wechat/webhook", self._verify_url)
        app.router.add_post("/channels/wechat/webhook", self._receive)
        app.cleanup_ctx.append(self._http_session)

    async def _http_session(self, _: web.Application) -> AsyncIterator[None]:
        assert self.wechat is not None
        timeout = aiohttp.ClientTimeout(total=self.wechat.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.http = session
            yield
            self.http = None

    # -- inbound -------------------------------------------------------------------------------

    def _check_signature(self, request: web.Request) -> None:
        assert self.wechat is not None
        if not is_signed_by_wechat(self.wechat.token, request.query):
            raise Forbidden("The WeChat signature is missing or does not match the token.")

    async def _verify_url(self, request: web.Request) -> web.Response:
        """WeChat's check when the server URL is saved in the Official Account's settings."""
        self._check_signature(request)
        return web.Response(text=request.query.get("echostr", ""), content_type="text/plain")

    async def _receive(self, request: web.Request) -> web.Response:
        self._check_signature(request)
        if request.query.get("encrypt_type", "raw") != "raw":
            raise InvalidInput("Encrypted (safe mode) messages are not supported: use 明文模式.")
        push = parse_push(await request.read())
        if push.msg_type == "event":
            if push.event == "subscribe":
                return _xml(passive_reply(push, WELCOME_TEXT))
            return _success()  # unsubscribe, menu clicks, location reports
        inbound = self._inbound(push)
        if inbound is None:
            return _success()  # images, links, locations: WeChat must not retry them
        answer = await self._accept_and_wait(push, inbound)
        return _xml(passive_reply(push, answer)) if answer is not None else _success()

    def _inbound(self, push: WeChatPush) -> InboundMessage | None:
        if push.msg_type == "text":
            text = push.content
        elif push.msg_type == "voice":
            text = push.recognition  # WeChat's transcript, when speech recognition is on
        else:
            return None
        if not text or not text.strip():
            return None
        if not push.msg_id:
            raise InvalidInput("A WeChat message needs its MsgId.")
        return InboundMessage(
            address=CustomerAddress(self.name, push.from_user),
            text=text,
            channel_message_id=push.msg_id,
            received_at=datetime.fromtimestamp(push.create_time, tz=UTC),
        )

    async def _accept_and_wait(self, push: WeChatPush, inbound: InboundMessage) -> str | None:
        """Commit the message; return the bot's answer if it comes within `reply_seconds`."""
        assert self.wechat is not None
        waiter = _Waiter(inbound.channel_message_id)
        # Registered before the commit, so an answer that is faster than us still finds it.
        self._waiters.setdefault(push.from_user, deque()).append(waiter)
        try:
            receipt = await self.accept_webhook_message(inbound)
            if receipt is None or receipt.duplicate or self.wechat.reply_seconds <= 0:
                return None  # the first delivery, or a customer-service message, answers it
            await asyncio.wait({waiter.answer}, timeout=self.wechat.reply_seconds)
        finally:
            # No await between taking the waiter away and reading it: an answer is either
            # in it now (passive reply) or will be sent as a customer-service message.
            self._forget(push.from_user, waiter)
        return waiter.answer.result() if waiter.answer.done() else None

    def _forget(self, openid: str, waiter: _Waiter) -> None:
        waiting = self._waiters.get(openid)
        if waiting is None:
            return
        if waiter in waiting:
            waiting.remove(waiter)
        if not waiting:
            del self._waiters[openid]
        if not waiter.answer.done():
            waiter.answer.cancel()

    # -- outbound ------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        if self.wechat is None:
            return DeliveryResult(
                ok=False, error="WeChat is not configured on this hub.", retryable=False
            )
        text = self.text_with_sources(message)
        waiter = self._take_waiter(message.address.address)
        if waiter is not None:
            waiter.answer.set_result(text)
            return DeliveryResult(ok=True, provider_message_id=f"passive:{waiter.msg_id}")
        try:
            await self._send_customer_service(message.address.address, text)
        except WeChatApiError as error:
            if error.errcode in RETRYABLE_ERRORS:
                raise
            return DeliveryResult(ok=False, error=str(error), retryable=False)
        return DeliveryResult(ok=True)

    def _take_waiter(self, openid: str) -> _Waiter | None:
        """The oldest webhook request of this customer still waiting for an answer."""
        waiting = self._waiters.get(openid)
        while waiting:
            waiter = waiting.popleft()
            if not waiter.answer.done():
                return waiter
        return None

    async def _send_customer_service(self, openid: str, text: str) -> None:
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        token = await self._access_token()
        try:
            await self._post("/cgi-bin/message/custom/send", token, body)
        except WeChatApiError as error:
            if error.errcode not in TOKEN_ERRORS:
                raise
            # Revoked or expired early (another system fetched a new token): fetch and retry.
            token = await self._access_token(stale=token)
            await self._post("/cgi-bin/message/custom/send", token, body)

    async def _post(self, path: str, token: str, body: dict[str, Any]) -> None:
        assert self.wechat is not None
        if self.http is None:
            raise RuntimeError("WeChat is not running")
        # UTF-8, not \\u escapes: WeChat shows escaped Chinese literally in some clients.
        data = json.dumps(body, ensure_ascii=False).encode()
        async with self.http.post(
            f"{self.wechat.api_url}{path}",
            params={"access_token": token},
            data=data,
            headers={"Content-Type": "application/json; charset=utf-8"},
        ) as response:
            response.raise_for_status()  # 5xx: let the outbox retry
            answer = await response.json(content_type=None)
        _check_errcode(answer)

    async def _access_token(self, stale: str | None = None) -> str:
        """A valid access token, fetched once and cached until shortly before it expires."""
        assert self.wechat is not None
        async with self._token_lock:
            fresh = self._token is not None and time.monotonic() < self._token_expires
            if fresh and self._token != stale:
                assert self._token is not None
                return self._token
            if self.http is None:
                raise RuntimeError("WeChat is not running")
            params = {
                "grant_type": "client_credential",
                "appid": self.wechat.app_id,
                "secret": self.wechat.app_secret,
            }
            async with self.http.get(f"{self.wechat.api_url}/cgi-bin/token", params=params) as r:
                r.raise_for_status()
                answer = await r.json(content_type=None)
            _check_errcode(answer)
            token, expires_in = answer.get("access_token"), answer.get("expires_in", 7200)
            if not isinstance(token, str) or not token:
                raise WeChatApiError(-1, "no access_token in WeChat's answer")
            self._token = token
            self._token_expires = time.monotonic() + max(int(expires_in) - TOKEN_MARGIN_SECONDS, 60)
            return token


def _check_errcode(answer: Any) -> None:
    if not isinstance(answer, dict):
        raise WeChatApiError(-1, "WeChat answered with something other than JSON")
    errcode = answer.get("errcode", 0)
    if errcode:
        raise WeChatApiError(int(errcode), str(answer.get("errmsg", "")))


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/xml")


def _success() -> web.Response:
    # The literal "success" (or an empty body) tells WeChat not to retry and not to warn.
    return web.Response(text="success", content_type="text/plain")
