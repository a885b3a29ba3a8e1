"""OTP step-up in web chat: `verify_start` / `verify_code` on `/chat`, through the running hub.

The SMS provider is the internet edge: a recording sender stands in for it, plugged in
where the SMS channel will be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from hub.clock import utcnow
from hub.storage.models import AuditLog, Conversation, Customer, Identity, OtpChallenge
from tests.chat_client import ChatClient
from tests.conftest import RunningHub


@dataclass
class RecordingSms:
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send_sms(self, to: str, text: str) -> None:
        self.sent.append((to, text))

    def last_code(self) -> str:
        found = re.search(r"\d{6}", self.sent[-1][1])
        assert found is not None
        return found.group(0)


def recording(hub: RunningHub) -> RecordingSms:
    sms = RecordingSms()
    assert hub.hub.otp is not None
    hub.hub.otp.sender = sms
    return sms


async def emit(client: ChatClient, event: str, data: Any) -> dict[str, Any]:
    ack = await client.sio.call(event, data, namespace="/chat", timeout=30)
    assert isinstance(ack, dict)
    return ack


async def test_a_visitor_verifies_by_sms_and_becomes_the_customer(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    sms = recording(hub)
    client = await ChatClient(hub.base_url).connect()
    try:
        first = await client.send("我想查一下我的理财")
        ack = await emit(client, "verify_start", {"phone": "138 0000 1001"})
        assert ack["ok"] is True and "expires_at" in ack
        assert [to for to, _ in sms.sent] == ["+8613800001001"]
        not_it = f"{(int(sms.last_code()) + 1) % 1_000_000:06d}"
        wrong = await emit(client, "verify_code", {"code": not_it})
        assert wrong["error"]["code"] == "invalid_input"
        right = await emit(client, "verify_code", {"code": sms.last_code()})
        assert right == {"ok": True, "verified": True, "method": "otp"}
    finally:
        await client.close()
    async with hub.hub.database.read() as session:
        identity = await session.scalar(
            select(Identity).where(Identity.address == f"visitor:{client.visitor_id}")
        )
        conversation = await session.get(Conversation, first["conversation_id"])
        c1001 = await session.scalar(select(Customer).where(Customer.external_id == "C1001"))
        challenge = await session.scalar(select(OtpChallenge))
        linked = await session.scalar(
            select(AuditLog).where(AuditLog.action == "identity.verified_link")
        )
    assert identity is not None and c1001 is not None and conversation is not None
    assert identity.customer_id == c1001.id
    assert identity.verified and identity.verified_method == "otp"
    # The conversation in progress now belongs to the verified customer.
    assert conversation.customer_id == c1001.id and conversation.verified
    assert challenge is not None and challenge.attempts == 2 and challenge.verified_at is not None
    assert sms.last_code() not in challenge.code_hash  # stored only as a keyed hash
    assert linked is not None and linked.reason == "verified by otp"
    assert linked.details["to_customer"] == c1001.id


async def test_an_unknown_number_gets_the_same_answer_and_no_sms(running_hub: RunningHub) -> None:
    sms = recording(running_hub)
    client = await ChatClient(running_hub.base_url).connect()
    try:
        ack = await emit(client, "verify_start", {"phone": "+86 139 1234 0000"})
        assert ack["ok"] is True
        code = await emit(client, "verify_code", {"code": "123456"})
        assert code["error"]["code"] == "invalid_input"
        bad = await emit(client, "verify_start", {"phone": "12"})
        assert bad["error"]["code"] == "invalid_input"
    finally:
        await client.close()
    assert sms.sent == []


async def test_five_wrong_codes_use_the_challenge_up(running_hub: RunningHub) -> None:
    sms = recording(running_hub)
    client = await ChatClient(running_hub.base_url).connect()
    try:
        await emit(client, "verify_start", {"phone": "+8613800001003"})
        code = sms.last_code()
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(5):
            assert "error" in await emit(client, "verify_code", {"code": wrong})
        late = await emit(client, "verify_code", {"code": code})
        assert late["error"]["code"] == "invalid_input"
    finally:
        await client.close()


async def test_an_expired_code_is_refused(running_hub: RunningHub) -> None:
    sms = recording(running_hub)
    client = await ChatClient(running_hub.base_url).connect()
    try:
        await emit(client, "verify_start", {"phone": "+8613800001003"})
        async with running_hub.hub.database.write() as session:
            await session.execute(
                update(OtpChallenge).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        ack = await emit(client, "verify_code", {"code": sms.last_code()})
        assert ack["error"]["code"] == "invalid_input"
    finally:
        await client.close()


async def test_asking_for_codes_is_rate_limited(running_hub: RunningHub) -> None:
    sms = recording(running_hub)
    client = await ChatClient(running_hub.base_url).connect()
    try:
        for _ in range(3):
            assert (await emit(client, "verify_start", {"phone": "+8613800001004"}))["ok"]
        ack = await emit(client, "verify_start", {"phone": "+8613800001004"})
        assert ack["error"]["code"] == "rate_limited"
    finally:
        await client.close()
    assert len(sms.sent) == 3
