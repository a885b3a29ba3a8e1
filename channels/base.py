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
from datetime import datetime
from typing import Protocol

import socketio
from aiohttp import web

from hub.domain import (
    AgentAssignment,
    ConversationStatus,
    CustomerAddress,
    DeliveryResult,
    DeliveryStatus,
    InboundMessage,
    MessageView,
    OutboundMessage,
    PushDevice,
    Receipt,
    VerifiedIdentity,
)
from hub.errors import HubError
from hub.settings import Settings

log = logging.getLogger(__name__)

AcceptInbound = Callable[[InboundMessage], Awaitable[Receipt]]
ReadHistory = Callable[[CustomerAddress], Awaitable[list[MessageView]]]
# (address, flag): the customer is typing / stopped; their last connection opened / closed.
CustomerSignal = Callable[[CustomerAddress, bool], Awaitable[None]]
# (channel, provider message id, status, error): a provider's delivery receipt arrived.
RecordStatus = Callable[[str, str, DeliveryStatus, str | None], Awaitable[None]]
# (conversation id, agent id, channel): open the conversation on the agent's console now.
ScreenPop = Callable[[int, int, str], Awaitable[None]]
# The language ("zh", "en") the hub knows the customer at this address by, if any.
KnownLanguage = Callable[[CustomerAddress], Awaitable[str | None]]
# (conversation id, status, assigned agent id) of the open conversation at an address, if any.
ConversationState = tuple[int, ConversationStatus, int | None]
CurrentConversation = Callable[[CustomerAddress], Awaitable[ConversationState | None]]
# (conversation id, agent id, reason): the agent did not take the call; unassign that agent
# and requeue it. False when the agent no longer holds it (taken over, closed meanwhile).
ReturnToQueue = Callable[[int, int, str], Awaitable[bool]]
# (address, provider's call status): the caller hung up; noted in the conversation's timeline.
CallEnded = Callable[[CustomerAddress, str], Awaitable[None]]


class PhoneVerifier(Protocol):
    """The OTP step-up a channel offers an unverified contact (implemented in routing)."""

    async def start_verification(
        self, address: CustomerAddress, phone: str, language: str | None = None
    ) -> datetime:
        """Text a code to `phone` if it is a customer's; return when the code expires."""

    async def check_verification(self, address: CustomerAddress, code: str) -> VerifiedIdentity:
        """Link the contact to the customer when `code` is right; raise `InvalidInput` if not."""


class AppDevices(Protocol):
    """Where the mobile app's push tokens are kept (implemented in `hub.devices`)."""

    async def register(self, device: PushDevice) -> None: ...

    async def devices_of(self, customer_ref: str) -> list[PushDevice]: ...

    async def forget(self, push_token: str) -> None: ...


@dataclass(frozen=True)
class ChannelContext:
    """What the wiring gives each adapter: the router's entry point and shared resources."""

    accept: AcceptInbound
    history: ReadHistory
    settings: Settings
    sio: socketio.AsyncServer  # the hub's one Socket.IO server (web chat, app, console)
    verify_phone: PhoneVerifier | None = None  # OTP step-up; None where it is not wired
    # Routing's hooks for live channels (None where routing is not wired): a typing
    # indicator for the agent, and connection changes that decide queue abandonment.
    customer_typing: CustomerSignal | None = None
    customer_connected: CustomerSignal | None = None
    # Delivery receipts (sent/delivered/read/failed) from providers' status webhooks.
    record_status: RecordStatus | None = None
    app_devices: AppDevices | None = None  # the mobile app's push tokens
    # For voice: pop the caller's context on the agent's screen as the call is put through,
    # and greet a caller in the language the hub already knows them by.
    screen_pop: ScreenPop | None = None
    known_language: KnownLanguage | None = None
    # For voice: whether a caller's conversation is already with a person, putting back in
    # its queue a call the agent did not answer, and hang-ups in the timeline.
    current_conversation: CurrentConversation | None = None
    return_to_queue: ReturnToQueue | None = None
    call_ended: CallEnded | None = None


class Channel(ABC):
    """Base of every channel adapter (template method: `deliver` wraps `send`)."""

    name: str
    # Other channel names this adapter also delivers (one Twilio adapter: SMS and WhatsApp).
    aliases: tuple[str, ...] = ()
    # Provider channels send through the outbox (retries, backoff, at-least-once); a live
    # socket channel such as web chat delivers at once, in the caller's task.
    uses_outbox: bool = True

    def __init__(self, context: ChannelContext) -> None:
        self.context = context

    def setup(self, app: web.Application) -> None:  # noqa: B027 - optional hook
        """Register the adapter's HTTP routes or Socket.IO namespaces on the app."""

    async def accept_webhook_message(self, inbound: InboundMessage) -> Receipt | None:
        """Commit a provider's message; None when it is refused for good (empty, too long).

        A provider retries a webhook that fails, so the two kinds of failure part here: a
        server-side failure (5xx) commits nothing and is raised, so the retry may succeed;
        a refusal would be refused again, so it is logged and the webhook answers normally.
        """
        try:
            receipt = await self.context.accept(inbound)
        except HubError as error:
            if error.http_status >= 500:
                raise
            log.warning("%s message %s refused: %s", self.name, inbound.channel_message_id, error)
            return None
        if receipt.duplicate:
            log.info(
                "%s: message %s came again; stored once", self.name, inbound.channel_message_id
            )
        return receipt

    async def deliver(self, message: OutboundMessage) -> DeliveryResult:
        """Send a committed message to the customer, enforcing the cross-channel rules."""
        if message.internal:
            # Internal notes are for agents only; refusing here protects every channel at once.
            log.error("refused to send internal message %s to a customer", message.message_id)
            return DeliveryResult(
                ok=False, error="internal notes are never sent to customers", retryable=False
            )
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

    async def agent_assigned(  # noqa: B027 - only live calls need to act on it
        self, assignment: AgentAssignment
    ) -> None:
        """An agent took one of this channel's conversations (voice puts the call through)."""

    @staticmethod
    def text_with_sources(message: OutboundMessage) -> str:
        """Plain-text rendering for channels without rich content: cite sources inline."""
        if not message.sources:
            return message.text
        titles = "; ".join(source.title for source in message.sources)
        return f"{message.text}\n({titles})"
