"""The port through which the router reaches customers; implemented by the channel registry."""

from __future__ import annotations

from typing import Protocol

from hub.domain import CustomerAddress, DeliveryResult, OutboundMessage


class ChannelGateway(Protocol):
    """Deliver messages and presence signals to a customer on whatever channel they use."""

    async def deliver(self, message: OutboundMessage) -> DeliveryResult:
        """Hand one message to the customer's channel; never raise for delivery failures."""
        ...

    async def typing(
        self, address: CustomerAddress, conversation_id: int, author: str, typing: bool
    ) -> None:
        """Tell the customer someone is (or stopped) composing, where the channel can show it."""
        ...
