"""The channel registry: names → adapter classes, and the gateway the router delivers through."""

from __future__ import annotations

import logging

from channels.app_push import AppChannel
from channels.base import Channel, ChannelContext
from channels.meta import MessengerChannel, WhatsAppCloudChannel
from channels.twilio_messaging import TwilioMessagingChannel
from channels.twilio_voice import TwilioVoiceChannel
from channels.webchat import WebChatChannel
from channels.wechat import WeChatChannel
from hub.domain import AgentAssignment, CustomerAddress, DeliveryResult, OutboundMessage

log = logging.getLogger(__name__)

# One line per channel. The app channel shares the web-chat adapter (same Socket.IO namespace).
CHANNEL_CLASSES: dict[str, type[Channel]] = {
    WebChatChannel.name: WebChatChannel,
    WhatsAppCloudChannel.name: WhatsAppCloudChannel,
    MessengerChannel.name: MessengerChannel,
    WeChatChannel.name: WeChatChannel,
    AppChannel.name: AppChannel,
    TwilioMessagingChannel.name: TwilioMessagingChannel,  # sms, and whatsapp via Twilio
    TwilioVoiceChannel.name: TwilioVoiceChannel,
}


class ChannelRegistry:
    """Holds the running adapters; implements `hub.outbound.ChannelGateway`."""

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = names or list(CHANNEL_CLASSES)
        unknown = [n for n in self.names if n not in CHANNEL_CLASSES]
        if unknown:
            raise ValueError(f"unknown channels {unknown}; known: {sorted(CHANNEL_CLASSES)}")
        self.adapters: dict[str, Channel] = {}

    def start(self, context: ChannelContext) -> None:
        """Create the adapters (later than __init__: they need the router, which needs us)."""
        self.adapters = {n: CHANNEL_CLASSES[n](context) for n in self.names}

    def adapter_for(self, channel: str) -> Channel | None:
        for adapter in self.adapters.values():
            if channel == adapter.name or channel in getattr(adapter, "aliases", ()):
                return adapter
        return None

    def delivers_directly(self, channel: str) -> bool:
        """Say whether messages on `channel` skip the outbox (live sockets, unknown channels)."""
        adapter = self.adapter_for(channel)
        return adapter is None or not adapter.uses_outbox

    async def deliver(self, message: OutboundMessage) -> DeliveryResult:
        adapter = self.adapter_for(message.address.channel)
        if adapter is None:
            return DeliveryResult(
                ok=False,
                error=f"no adapter for channel {message.address.channel}",
                retryable=False,
            )
        return await adapter.deliver(message)

    async def typing(
        self, address: CustomerAddress, conversation_id: int, author: str, typing: bool
    ) -> None:
        adapter = self.adapter_for(address.channel)
        if adapter is not None:
            await adapter.typing(address, conversation_id, author, typing)

    async def agent_assigned(self, assignment: AgentAssignment) -> None:
        """Tell the conversation's channel that an agent took it (a call is put through)."""
        adapter = self.adapter_for(assignment.address.channel)
        if adapter is not None:
            await adapter.agent_assigned(assignment)
