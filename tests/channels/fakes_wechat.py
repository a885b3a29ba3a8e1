"""A local stand-in for WeChat's Official Account API, and pushes built as WeChat builds them.

The fake issues access tokens from `/cgi-bin/token` only for the right AppID and AppSecret,
accepts `/cgi-bin/message/custom/send` only with a current token and the fields WeChat
requires, answers with WeChat's `errcode`/`errmsg` (HTTP 200, as WeChat does), records what
was sent, and can revoke tokens or be told to fail.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.channels.fake_server import FakeProvider, serve_on_loopback

TOKEN = "servicehub-wechat-token"
APP_ID = "wx1234567890abcdef"
APP_SECRET = "0123456789abcdef0123456789abcdef"
ACCOUNT = "gh_0123456789ab"  # the Official Account's original id


@dataclass
class CustomMessage:
    touser: str
    content: str


@dataclass
class FakeWeChat(FakeProvider[CustomMessage]):
    """The fake's state: tokens it issued, what it accepted, the failure it was told to give."""

    tokens_issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    fail_errcode: int | None = None  # answer every send with this errcode while set
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def revoke_tokens(self) -> None:
        """Make every issued token invalid, as fetching a new one elsewhere does."""
        self.valid_tokens.clear()


def build_app(state: FakeWeChat) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        query = request.query
        if query.get("grant_type") != "client_credential":
            return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
        if query.get("appid") != APP_ID:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if query.get("secret") != APP_SECRET:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        state.tokens_issued += 1
        issued = f"ACCESS_TOKEN_{state.tokens_issued}_{next(state._ids)}"
        state.valid_tokens.add(issued)
        return web.json_response({"access_token": issued, "expires_in": 7200})

    async def custom_send(request: web.Request) -> web.Response:
        if request.query.get("access_token") not in state.valid_tokens:
            return web.json_response(
                {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
            )
        if state.fail_errcode is not None:
            return web.json_response({"errcode": state.fail_errcode, "errmsg": "system error"})
        try:
            body = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return web.json_response({"errcode": 47001, "errmsg": "data format error"})
        if not isinstance(body, dict) or not isinstance(body.get("touser"), str):
            return web.json_response({"errcode": 40003, "errmsg": "invalid openid"})
        text = body.get("text")
        if body.get("msgtype") != "text" or not isinstance(text, dict):
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        content = text.get("content")
        if not isinstance(content, str) or not content:
            return web.json_response({"errcode": 44003, "errmsg": "empty news data"})
        state.sent.append(CustomMessage(body["touser"], content))
        state._arrived.set()
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    app = web.Application()
    app.router.add_get("/cgi-bin/token", token)
    app.router.add_post("/cgi-bin/message/custom/send", custom_send)
    return app


def fake_wechat() -> AbstractAsyncContextManager[FakeWeChat]:
    """Run the fake Official Account API on a loopback port."""
    return serve_on_loopback(FakeWeChat(), build_app)


# -- pushes as WeChat sends them ----------------------------------------------------------------


def signed_query(token: str = TOKEN, **extra: str) -> dict[str, str]:
    """`signature`, `timestamp`, `nonce` as WeChat puts them on every request."""
    timestamp, nonce = str(int(time.time())), str(int(time.monotonic_ns() % 10**9))
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce, **extra}


def text_push(openid: str, content: str, msg_id: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def event_push(openid: str, event: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    ).encode()


def image_push(openid: str, msg_id: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[image]]></MsgType>"
        "<PicUrl><![CDATA[http://mmbiz.qpic.cn/x.jpg]]></PicUrl>"
        f"<MediaId><![CDATA[media_{msg_id}]]></MediaId><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


async def post_push(
    base_url: str, body: bytes, *, query: dict[str, str] | None = None, openid: str | None = None
) -> tuple[int, str]:
    """POST a push as WeChat does (signed query with the sender's openid); return (status, body)."""
    params = query if query is not None else signed_query(**({"openid": openid} if openid else {}))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base_url}/channels/wechat/webhook",
            params=params,
            data=body,
            headers={"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0"},
        ) as response,
    ):
        return response.status, await response.text()
