"""One-time codes by Twilio SMS: with Twilio configured, the OTP step-up texts through its API.

The code travels the real path: web chat asks for it, the hub posts it to the fake Twilio
Messages API (which checks credentials and fields as Twilio does), and the code the fake
received is the one that verifies. When Twilio refuses, the customer is told, at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from channels.twilio_sms import TwilioSmsSender
from hub.storage.models import Customer, Identity
from knowledge.embedding import Embedder
from routing.otp import LoggingSmsSender
from tests.channels.fakes_twilio import SMS_NUMBER
from tests.channels.hubs import twilio_hub
from tests.chat_client import ChatClient
from tests.conftest import RunningHub

WANG = "+8613800001001"  # demo customer C1001


async def emit(client: ChatClient, event: str, data: Any) -> dict[str, Any]:
    ack = await client.sio.call(event, data, namespace="/chat", timeout=30)
    assert isinstance(ack, dict)
    return ack


def code_in(body: str) -> str:
    found = re.search(r"\d{6}", body)
    assert found is not None, body
    return found.group(0)


async def test_the_code_goes_out_by_twilio_sms_and_verifies(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        assert isinstance(hub.hub.otp and hub.hub.otp.sender, TwilioSmsSender)
        client = await ChatClient(hub.base_url).connect()
        try:
            ack = await emit(client, "verify_start", {"phone": "138 0000 1001"})
            assert ack["ok"] is True
            [sms] = await twilio.wait_for(1)
            assert (sms.to, sms.sender) == (WANG, SMS_NUMBER)
            assert sms.status_callback is None  # a code has no delivery receipt to track
            right = await emit(client, "verify_code", {"code": code_in(sms.body)})
            assert right == {"ok": True, "verified": True, "method": "otp"}
        finally:
            await client.close()
        assert await customer_ref(hub, f"visitor:{client.visitor_id}") == "C1001"


async def test_a_code_twilio_refuses_is_an_error_the_customer_sees(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> None:
    async with twilio_hub(demo_template, tmp_path, embedders) as (hub, twilio):
        client = await ChatClient(hub.base_url).connect()
        try:
            twilio.fail_status = 503
            refused = await emit(client, "verify_start", {"phone": WANG})
            assert refused["error"]["code"] == "service_unavailable"
            assert "try again" in refused["error"]["message"]
            assert twilio.attempts == 1 and twilio.sent == []

            twilio.fail_status = None  # asking again works
            again = await emit(client, "verify_start", {"phone": WANG})
            assert again["ok"] is True
            [sms] = await twilio.wait_for(1)
            right = await emit(client, "verify_code", {"code": code_in(sms.body)})
            assert right["verified"] is True
        finally:
            await client.close()


async def test_without_twilio_codes_are_logged_not_sent(running_hub: RunningHub) -> None:
    assert running_hub.hub.otp is not None
    assert isinstance(running_hub.hub.otp.sender, LoggingSmsSender)


async def customer_ref(hub: RunningHub, address: str) -> str | None:
    async with hub.hub.database.read() as session:
        identity = await session.scalar(select(Identity).where(Identity.address == address))
        assert identity is not None and identity.customer_id is not None
        customer = await session.get(Customer, identity.customer_id)
        return customer.external_id if customer is not None else None
