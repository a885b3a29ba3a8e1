"""One customer across channels: E.164 phone numbers, verified links, never a weak auto-merge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from hub.clock import utcnow
from hub.domain import CustomerAddress, InboundMessage, VerifiedIdentity
from hub.errors import Conflict, InvalidInput
from hub.phones import normalise_phone
from hub.storage.database import Database
from hub.storage.models import AuditLog, Customer, Identity
from routing.identity import identify, suggest_matches
from routing.merges import merge_customers, undo_merge
from tests.conftest import RunningHub


async def test_sms_and_whatsapp_from_one_number_are_one_customer_through_the_router(
    running_hub_any_db: RunningHub,
) -> None:
    router = running_hub_any_db.hub.router
    sms = await router.accept(
        InboundMessage(CustomerAddress("sms", "+86 139 0000 2222"), "你好", "SM-1")
    )
    whatsapp = await router.accept(
        InboundMessage(CustomerAddress("whatsapp", "whatsapp:+8613900002222"), "hello", "WA-1")
    )
    call = await router.accept(InboundMessage(CustomerAddress("voice", "13900002222"), "…", "CA-1"))
    assert sms.customer_id == whatsapp.customer_id == call.customer_id
    async with running_hub_any_db.hub.database.read() as session:
        addresses = set(
            await session.execute(
                select(Identity.channel, Identity.address).where(
                    Identity.customer_id == sms.customer_id
                )
            )
        )
    assert addresses == {
        ("sms", "+8613900002222"),
        ("whatsapp", "+8613900002222"),
        ("voice", "+8613900002222"),
    }


async def test_a_new_phone_channel_joins_the_firms_customer_with_that_number(
    database: Database,
) -> None:
    async with database.write() as session:
        firm = Customer(external_id="C9", display_name="Zhao", risk_tags=[], profile={})
        session.add(firm)
        await session.flush()
        session.add(Identity(customer_id=firm.id, channel="sms", address="+8613800009999"))
        await session.flush()
        customer, identity = await identify(
            session, CustomerAddress("whatsapp", "+86 138-0000-9999"), None
        )
        assert customer.id == firm.id
        # Joined, but not verified: a sender id proves nothing about who is typing.
        assert identity.verified is False and identity.address == "+8613800009999"


async def test_unverified_handles_stay_separate_even_with_the_same_name(
    database: Database,
) -> None:
    async with database.write() as session:
        first, _ = await identify(
            session, CustomerAddress("wechat", "o_abc123"), None, display_name="王建国"
        )
        second, _ = await identify(
            session, CustomerAddress("messenger", "psid-777"), None, display_name="王建国"
        )
        third, _ = await identify(
            session, CustomerAddress("webchat", "visitor:v-12345678"), None, display_name="王建国"
        )
        assert len({first.id, second.id, third.id}) == 3
        # A shared name is no evidence on its own: nothing is even suggested.
        assert await suggest_matches(session, first.id) == []


async def test_a_number_two_records_claim_joins_neither(database: Database) -> None:
    async with database.write() as session:
        ids = []
        for channel in ("sms", "voice"):
            someone = Customer(risk_tags=[], profile={})
            session.add(someone)
            await session.flush()
            session.add(Identity(customer_id=someone.id, channel=channel, address="+8613700001111"))
            ids.append(someone.id)
        await session.flush()
        newcomer, _ = await identify(session, CustomerAddress("whatsapp", "+8613700001111"), None)
        assert newcomer.id not in ids
        suggested = await suggest_matches(session, newcomer.id)
        assert {m.customer_id for m in suggested} == set(ids)
        assert all(m.evidence == ("same phone",) for m in suggested)


async def test_a_signed_token_links_verified(database: Database) -> None:
    address = CustomerAddress("webchat", "customer:C77")
    async with database.write() as session:
        customer, identity = await identify(
            session, address, VerifiedIdentity("C77", "token"), display_name="Li"
        )
        assert customer.external_id == "C77"
        assert identity.verified and identity.verified_method == "token"


async def test_an_otp_verified_web_visitor_lapses_after_an_hour(database: Database) -> None:
    address = CustomerAddress("webchat", "visitor:v-lapse-0001")
    async with database.write() as session:
        _, identity = await identify(session, address, None)
        identity.verified, identity.verified_method = True, "otp"
        identity.verified_at = utcnow() - timedelta(minutes=30)
        identity_id = identity.id
    async with database.write() as session:
        _, identity = await identify(session, address, None)
        assert identity.verified  # still within the hour
        await session.execute(
            update(Identity)
            .where(Identity.id == identity_id)
            .values(verified_at=utcnow() - timedelta(hours=2))
        )
    async with database.write() as session:
        _, identity = await identify(session, address, None)
        assert identity.verified is False
        lapsed = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "identity.verification_lapsed")
        )
        assert lapsed == 1


async def test_merge_then_undo_restores_both_records(database: Database) -> None:
    async with database.write() as session:
        firm = Customer(
            external_id="C5", display_name="Chen", risk_tags=[], profile={"phone": "+8613600003333"}
        )
        session.add(firm)
        await session.flush()
        stray, handle = await identify(session, CustomerAddress("sms", "+8613600003333"), None)
        assert stray.id != firm.id  # the firm's profile phone alone does not join them
        [match] = await suggest_matches(session, stray.id)
        assert match.customer_id == firm.id and match.evidence == ("same phone",)
        merge = await merge_customers(
            session, stray.id, firm.id, reason="confirmed on the phone", actor="t", agent_id=None
        )
        assert merge.survivor_id == firm.id  # the firm's customer survives
        assert handle.customer_id == firm.id
        with pytest.raises(Conflict):
            await merge_customers(
                session, stray.id, firm.id, reason="twice over", actor="t", agent_id=None
            )
        await undo_merge(session, merge.id, reason="it was his wife", actor="t", agent_id=None)
        await session.refresh(handle)
        await session.refresh(stray)
        assert handle.customer_id == stray.id and stray.merged_into_id is None


async def test_a_merge_needs_a_reason(database: Database) -> None:
    async with database.write() as session:
        one, _ = await identify(session, CustomerAddress("wechat", "o_one"), None)
        two, _ = await identify(session, CustomerAddress("wechat", "o_two"), None)
        with pytest.raises(InvalidInput):
            await merge_customers(session, one.id, two.id, reason=" ok ", actor="t", agent_id=None)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+86 138 0000 1001", "+8613800001001"),
        ("13800001001", "+8613800001001"),
        ("8613800001001", "+8613800001001"),
        ("whatsapp:+8613800001001", "+8613800001001"),
        ("+44 7911 123456", "+447911123456"),
        ("(021) 6234-5678", "+862162345678"),
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


def test_a_non_number_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidInput) as error:
        normalise_phone("12345")
    assert "12345" not in error.value.message
