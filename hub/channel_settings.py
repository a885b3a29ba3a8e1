"""Credentials and options of the Meta, WeChat and app-push channels, read with the others.

Each channel is off until its credentials are set; a channel that is half configured fails
at start-up with a sentence naming what is missing (docs/channels.md says where to find it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from hub.errors import ConfigurationError

Getter = Callable[[str], str | None]

DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v19.0"
DEFAULT_WECHAT_API_URL = "https://api.weixin.qq.com"
# WeChat drops a passive reply that comes later than 5 s; leave room for the network.
DEFAULT_WECHAT_REPLY_SECONDS = 4.5


@dataclass(frozen=True)
class WhatsAppTemplate:
    """A message template approved by Meta, with one body parameter `{{1}}` for the text.

    Outside WhatsApp's 24-hour customer-service window only approved templates may be sent;
    a reply that is due then goes out as this template, the reply text as its parameter.
    """

    name: str
    language: str  # Meta's language code of the approved translation: "zh_CN", "en_US"


@dataclass(frozen=True)
class MetaSettings:
    """One Meta app: its secret signs every webhook; WhatsApp Cloud and Messenger hang off it."""

    app_secret: str
    verify_token: str
    graph_url: str = DEFAULT_GRAPH_URL
    graph_version: str = DEFAULT_GRAPH_VERSION
    whatsapp_phone_number_id: str | None = None
    whatsapp_token: str | None = None
    whatsapp_window_template: WhatsAppTemplate | None = None
    messenger_page_token: str | None = None
    timeout_seconds: float = 10.0

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.whatsapp_phone_number_id and self.whatsapp_token)

    @property
    def messenger_enabled(self) -> bool:
        return bool(self.messenger_page_token)


@dataclass(frozen=True)
class WeChatSettings:
    """A WeChat Official Account in plaintext message mode (明文模式)."""

    token: str  # the "Token" entered on the Official Account's server configuration page
    app_id: str
    app_secret: str
    api_url: str = DEFAULT_WECHAT_API_URL
    # How long the webhook waits for the bot before answering "success" and sending the
    # reply later as a customer-service message; 0 always sends it later.
    reply_seconds: float = DEFAULT_WECHAT_REPLY_SECONDS
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class AppPushSettings:
    """The push service that reaches the mobile app when the customer is not connected.

    An FCM HTTP v1-style endpoint: Firebase itself, or the firm's own push gateway that fans
    out to APNs and the Android vendors' services (common for apps sold in China).
    """

    url: str  # the full send URL, e.g. https://fcm.googleapis.com/v1/projects/<id>/messages:send
    token: str  # sent as `Authorization: Bearer`
    title: str = "您有一条新的客服消息"
    timeout_seconds: float = 10.0


def load_meta_settings(get: Getter) -> MetaSettings | None:
    """Read `SERVICEHUB_META_*`; None when no Meta channel is configured."""
    names = (
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
        "META_WHATSAPP_PHONE_NUMBER_ID",
        "META_WHATSAPP_TOKEN",
        "META_MESSENGER_PAGE_TOKEN",
    )
    if not any(get(name) for name in names):
        return None
    app_secret, verify_token = get("META_APP_SECRET"), get("META_VERIFY_TOKEN")
    if not app_secret or not verify_token:
        raise ConfigurationError(
            "Set SERVICEHUB_META_APP_SECRET (the Meta app's secret, which signs webhooks) and "
            "SERVICEHUB_META_VERIFY_TOKEN (the verify token you enter in the app's webhook "
            "settings) to use WhatsApp Cloud or Messenger."
        )
    phone_id, wa_token = get("META_WHATSAPP_PHONE_NUMBER_ID"), get("META_WHATSAPP_TOKEN")
    if bool(phone_id) != bool(wa_token):
        raise ConfigurationError(
            "WhatsApp Cloud needs both SERVICEHUB_META_WHATSAPP_PHONE_NUMBER_ID and "
            "SERVICEHUB_META_WHATSAPP_TOKEN (a system user's access token)."
        )
    page_token = get("META_MESSENGER_PAGE_TOKEN")
    if not phone_id and not page_token:
        raise ConfigurationError(
            "Meta is configured but no channel is: set SERVICEHUB_META_WHATSAPP_PHONE_NUMBER_ID "
            "and SERVICEHUB_META_WHATSAPP_TOKEN, or SERVICEHUB_META_MESSENGER_PAGE_TOKEN."
        )
    return MetaSettings(
        app_secret=app_secret,
        verify_token=verify_token,
        graph_url=_url(get("META_GRAPH_URL") or DEFAULT_GRAPH_URL, "META_GRAPH_URL"),
        graph_version=get("META_GRAPH_VERSION") or DEFAULT_GRAPH_VERSION,
        whatsapp_phone_number_id=phone_id,
        whatsapp_token=wa_token,
        whatsapp_window_template=_template(get("META_WHATSAPP_WINDOW_TEMPLATE")),
        messenger_page_token=page_token,
    )


def load_wechat_settings(get: Getter) -> WeChatSettings | None:
    """Read `SERVICEHUB_WECHAT_*`; None when WeChat is not configured."""
    token, app_id, secret = get("WECHAT_TOKEN"), get("WECHAT_APP_ID"), get("WECHAT_APP_SECRET")
    if not (token or app_id or secret):
        return None
    if not (token and app_id and secret):
        raise ConfigurationError(
            "WeChat needs SERVICEHUB_WECHAT_TOKEN (the server configuration's Token), "
            "SERVICEHUB_WECHAT_APP_ID and SERVICEHUB_WECHAT_APP_SECRET (AppID and AppSecret "
            "from the Official Account's basic configuration)."
        )
    reply_text = get("WECHAT_REPLY_SECONDS")
    reply_seconds = DEFAULT_WECHAT_REPLY_SECONDS
    if reply_text is not None:
        try:
            reply_seconds = float(reply_text)
        except ValueError:
            reply_seconds = -1.0
        if not 0 <= reply_seconds <= 4.8:
            raise ConfigurationError(
                "SERVICEHUB_WECHAT_REPLY_SECONDS must be from 0 to 4.8: WeChat drops passive "
                f"replies after 5 seconds; not {reply_text!r}."
            )
    return WeChatSettings(
        token=token,
        app_id=app_id,
        app_secret=secret,
        api_url=_url(get("WECHAT_API_URL") or DEFAULT_WECHAT_API_URL, "WECHAT_API_URL"),
        reply_seconds=reply_seconds,
    )


def load_app_push_settings(get: Getter) -> AppPushSettings | None:
    """Read `SERVICEHUB_APP_PUSH_*`; None when push notifications are off."""
    url, token = get("APP_PUSH_URL"), get("APP_PUSH_TOKEN")
    if not url and not token:
        return None
    if not url or not token:
        raise ConfigurationError(
            "App push needs SERVICEHUB_APP_PUSH_URL (the push service's send URL) and "
            "SERVICEHUB_APP_PUSH_TOKEN (its bearer token)."
        )
    title = get("APP_PUSH_TITLE")
    settings = AppPushSettings(url=_url(url, "APP_PUSH_URL"), token=token)
    return replace(settings, title=title) if title else settings


def _template(text: str | None) -> WhatsAppTemplate | None:
    if text is None:
        return None
    name, _, language = text.partition(":")
    if not name.strip() or not language.strip():
        raise ConfigurationError(
            "SERVICEHUB_META_WHATSAPP_WINDOW_TEMPLATE must be 'template_name:language', "
            f"for example 'service_followup:zh_CN'; not {text!r}."
        )
    return WhatsAppTemplate(name.strip(), language.strip())


def _url(text: str, name: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ConfigurationError(f"SERVICEHUB_{name} must be an http(s):// URL, not {text!r}.")
    return text.rstrip("/")
