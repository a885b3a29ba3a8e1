"""What every channel adapter is, and the rules that hold for all of them.

An adapter parses and verifies inbound traffic into `InboundMessage`s, hands them to the
router's entry point it was given, and sends `OutboundMessage`s back. Cross-channel rules
live here once: internal notes never leave the hub, a failing send is reported (never
raised into the pipeline), richer content degrades to text.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import socketio
from aiohttp import web

from hub.domain import (
    CustomerAddress,
    DeliveryResult,
    InboundMessage,
    MessageView,
    OutboundMessage,
    Receipt,
)
from hub.settings import Settings

log = logging.getLogger(__name__)

AcceptInbound = Callable[[InboundMessage], Awaitable[Receipt]]
ReadHistory = Callable[[CustomerAddress], Awaitable[list[MessageView]]]


@dataclass(frozen=True)
class ChannelContext:
    """What the wiring gives each adapter: the router's entry point and shared resources."""

    accept: AcceptInbound
    history: ReadHistory
    settings: Settings
    sio: socketio.AsyncServer  # the hub's one Socket.IO server (web chat, app, console)


class Channel(ABC):
    """Base of every channel adapter (template method: `deliver` wraps `send`)."""

    name: str

    def __init__(self, context: ChannelContext) -> None:
        self.context = context

    def setup(self, app: web.Application) -> None:  # noqa: B027 - optional hook
        """Register the adapter's HTTP routes or Socket.IO namespaces on the app."""

    async def deliver(self, message: OutboundMessage) -> DeliveryResult:
        """Send a committed message to the customer, enforcing the cross-channel rules."""
        if message.internal:
            # Internal notes are for agents only; refusing here protects every channel at once.
            log.error("refused to send internal message %s to a customer", message.message_id)
            return DeliveryResult(ok=False, error="internal notes are never sent to customers")
        try:
            return await self.send(message)
        except Exception as error:  # a provider failure must become a status, not a crash
            log.exception("channel %s failed to send message %s", self.name, message.message_id)
            return DeliveryResult(ok=False, error=f"{type(error).__name__}: {error}")

    @abstractmethod
    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Hand the message to the provider (or connected client)."""

    async def typing(  # noqa: B027 - most channels cannot show typing; nothing to do
        self, address: CustomerAddress, conversation_id: int, author: str, typing: bool
    ) -> None:
        """Show a composing indicator where the channel supports one."""

    @staticmethod
    def text_with_sources(message: OutboundMessage) -> str:
        """Plain-text rendering for channels without rich content: cite sources inline."""
        if not message.sources:
            return message.text
        titles = "; ".join(source.title for source in message.sources)
        return f"{message.text}\n({titles})"
