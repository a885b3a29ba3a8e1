"""The customer 360, reveals and merges through the running hub, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select

from hub.clock import utcnow
from hub.domain import ConversationStatus
from hub.storage.models import Conversation, Customer, CustomerMerge, Holding, Identity
from tests.conftest import RunningHub
from tests.console.helpers import agent_id, audit_rows, call, login, seed_conversation

C1001_NUMBERS = [
    "+8613800001001",
    "13800001001",
    "310115196804120359",
    "6219997110665803518",
    "6219998847530331113",
    "8801195106049697",
    "3101086670067207",
]


async def test_agent_sees_the_whole_customer_masked_and_the_view_is_audited(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    database = hub.hub.database
    li = await agent_id(database, "agent.li")
    earlier = await seed_conversation(
        database,
        external_id="C1001",
        channel="voice",
        address="+8613800001001",
        closed=True,
        csat_score=5,
    )
    current = await seed_conversation(
        database, external_id="C1001", channel="sms", address="+8613800001001", assigned_to=li
    )
    token = await login(hub, "agent.li")
    before = utcnow()
    status, body = await call(
        hub,
        "GET",
        f"/api/customers/{current.customer_id}/context?conversation_id={current.conversation_id}",
        token=token,
    )
    assert status == 200, body
    customer = body["customer"]
    assert customer["external_id"] == "C1001" and customer["segment"] == "hnw"
    assert customer["risk_preference"] == "R4"
    assert customer["profile"]["phone"] == "+86 138****1001"
    assert customer["profile"]["national_id"] == "310***********0359"
    assert customer["profile"]["email"] == "wang.jianguo@example.com"
    kinds = {h["kind"] for h in body["holdings"]}
    assert {"deposit", "wealth", "securities"} <= kinds
    cd = next(h for h in body["holdings"] if h["product_name"].startswith("大额存单"))
    assert cd["account_number"] == "621999*********1113"
    assert cd["maturity_date"] == "2027-03-15" and cd["amount"] == "3000000.00"
    assert 0 < len(body["transactions"]) <= 20
    times = [datetime.fromisoformat(t["at"]) for t in body["transactions"]]
    assert times == sorted(times, reverse=True)
    assert body["cases"] and body["cases"][0]["id"].startswith("CASE-")
    assert {(i["channel"], i["address"]) for i in body["identities"]} >= {
        ("sms", "+86 138****1001"),
        ("voice", "+86 138****1001"),
    }
    contacts = {c["conversation_id"]: c for c in body["contacts"]}
    assert contacts[earlier.conversation_id]["csat_score"] == 5
    assert contacts[earlier.conversation_id]["resolution"] == "resolved"
    assert contacts[earlier.conversation_id]["channel"] == "voice"
    assert contacts[current.conversation_id]["handoff"] is True
    assert body["source"] == {"kind": "database", "degraded": False, "notes": []}
    shown = json.dumps(body, ensure_ascii=False)
    for number in C1001_NUMBERS:
        assert number not in shown, number

    [row] = await audit_rows(database, "customer.context.view")
    assert row.actor == f"staff:{li}:agent.li"
    assert row.subject_type == "customer" and row.subject_id == str(current.customer_id)
    assert row.reason == f"serving conversation {current.conversation_id}"
    assert row.details["conversation_id"] == current.conversation_id
    assert before - timedelta(seconds=1) <= row.at <= utcnow()


async def test_alerts_reach_the_agent(running_hub: RunningHub) -> None:
    database = running_hub.hub.database
    wang = await agent_id(database, "agent.wang")
    seeded = await seed_conversation(
        database, external_id="C1005", channel="sms", address="+8613800001005", assigned_to=wang
    )
    token = await login(running_hub, "agent.wang")
    status, body = await call(
        running_hub,
        "GET",
        f"/api/customers/{seeded.customer_id}/context?conversation_id={seeded.conversation_id}",
        token=token,
    )
    assert status == 200
    [alert] = body["alerts"]
    assert alert["kind"] == "fraud" and alert["active"] is True and "冻结" in alert["text"]


async def test_a_view_without_purpose_is_refused(running_hub: RunningHub) -> None:
    database = running_hub.hub.database
    seeded = await seed_conversation(
        database, external_id="C1002", channel="voice", address="+8613800001002"
    )
    token = await login(running_hub, "supervisor.sun")
    status, body = await call(
        running_hub, "GET", f"/api/customers/{seeded.customer_id}/context", token=token
    )
    assert status == 400 and body["code"] == "invalid_input"
    status, _ = await call(
        running_hub,
        "GET",
        f"/api/customers/{seeded.customer_id}/context?reason=quality%20review",
        token=token,
    )
    assert status == 200
    [row] = await audit_rows(database, "customer.context.view")
    assert row.reason == "quality review" and row.details["role"] == "supervisor"


async def test_supervisor_reveals_a_number_and_the_reveal_is_audited(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    database = hub.hub.database
    seeded = await seed_conversation(
        database, external_id="C1001", channel="sms", address="+8613800001001"
    )
    token = await login(hub, "supervisor.sun")
    path = f"/api/customers/{seeded.customer_id}/reveal"
    status, body = await call(
        hub, "POST", path, token=token, json={"field": "national_id", "reason": "no"}
    )
    assert status == 400 and body["code"] == "invalid_input"
    status, body = await call(
        hub,
        "POST",
        path,
        token=token,
        json={"field": "national_id", "reason": "customer disputes the ID on file"},
    )
    assert status == 200 and body == {"value": "310115196804120359"}
    async with database.read() as session:
        holding = await session.scalar(
            select(Holding).where(
                Holding.customer_id == seeded.customer_id, Holding.kind == "securities"
            )
        )
    assert holding is not None
    status, body = await call(
        hub,
        "POST",
        path,
        token=token,
        json={"field": "account_number", "holding_id": holding.id, "reason": "transfer check"},
    )
    assert status == 200 and body == {"value": "3101086670067207"}
    rows = await audit_rows(database, "customer.reveal")
    sun = await agent_id(database, "supervisor.sun")
    assert [(r.actor, r.details["field"], r.reason) for r in rows] == [
        (f"staff:{sun}:supervisor.sun", "national_id", "customer disputes the ID on file"),
        (f"staff:{sun}:supervisor.sun", "account_number", "transfer check"),
    ]
    assert rows[1].details["holding_id"] == str(holding.id)


async def test_chat_text_is_masked_for_agents_and_shown_to_supervisors(
    running_hub: RunningHub,
) -> None:
    database = running_hub.hub.database
    li = await agent_id(database, "agent.li")
    seeded = await seed_conversation(
        database,
        external_id="C1001",
        channel="sms",
        address="+8613800001001",
        texts=("卡号6219997110665803518丢了，身份证310115196804120359，手机13800001001",),
        assigned_to=li,
    )
    path = f"/api/conversations/{seeded.conversation_id}"
    status, agent_view = await call(
        running_hub, "GET", path, token=await login(running_hub, "agent.li")
    )
    assert status == 200
    text = agent_view["messages"][0]["text"]
    assert text == "卡号621999*********3518丢了，身份证310***********0359，手机138****1001"
    assert agent_view["last_message"]["text"] == text
    assert agent_view["verification"] == {
        "verified": False,
        "method": None,
        "channel": "sms",
        "address_masked": "+86 138****1001",
    }
    assert agent_view["handoff"]["reason"] == "request_human"
    assert agent_view["unread"] == 1
    status, supervisor_view = await call(
        running_hub, "GET", path, token=await login(running_hub, "supervisor.sun")
    )
    assert "6219997110665803518" in supervisor_view["messages"][0]["text"]


async def test_kb_suggestions_follow_the_customers_latest_message(running_hub: RunningHub) -> None:
    database = running_hub.hub.database
    li = await agent_id(database, "agent.li")
    seeded = await seed_conversation(
        database,
        external_id="C1001",
        channel="sms",
        address="+8613800001001",
        texts=("你好", "信用卡丢了怎么挂失"),
        assigned_to=li,
    )
    status, body = await call(
        running_hub,
        "GET",
        f"/api/kb/suggest?conversation_id={seeded.conversation_id}",
        token=await login(running_hub, "agent.li"),
    )
    assert status == 200
    assert body["results"] and set(body["results"][0]) >= {"id", "title", "score", "snippet"}
    assert "挂失" in body["results"][0]["title"]


async def test_canned_replies_come_in_both_languages(running_hub: RunningHub) -> None:
    token = await login(running_hub, "agent.li")
    _, zh = await call(running_hub, "GET", "/api/canned-replies?language=zh", token=token)
    _, en = await call(running_hub, "GET", "/api/canned-replies?language=en", token=token)
    assert zh["replies"] and en["replies"]
    assert set(zh["replies"][0]) >= {"id", "shortcut", "title", "text", "skill"}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in r["text"]) for r in zh["replies"])
    assert all(r["text"].isascii() for r in en["replies"])
    status, body = await call(running_hub, "GET", "/api/canned-replies?language=fr", token=token)
    assert status == 400 and body["code"] == "invalid_input"


async def test_merge_and_undo_move_exactly_what_they_should(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    database = hub.hub.database
    li = await agent_id(database, "agent.li")
    seeded = await seed_conversation(
        database, external_id="C1007", channel="sms", address="+8613800001007", assigned_to=li
    )
    # A Messenger contact who gave the same e-mail: a separate record until someone confirms.
    async with database.write() as session:
        other = Customer(
            display_name="James W", risk_tags=[], profile={"email": "JAMES.WHITFIELD@example.com"}
        )
        session.add(other)
        await session.flush()
        handle = Identity(customer_id=other.id, channel="messenger", address="psid-james")
        session.add(handle)
        await session.flush()
        old_contact = Conversation(
            customer_id=other.id,
            identity_id=handle.id,
            channel="messenger",
            status=ConversationStatus.CLOSED,
            closed_at=utcnow(),
        )
        session.add(old_contact)
        await session.flush()
        other_id, handle_id, old_contact_id = other.id, handle.id, old_contact.id
        c1007 = await session.get(Customer, seeded.customer_id)
        assert c1007 is not None
        c1007.profile = {**c1007.profile, "email": "james.whitfield@example.com"}
    token = await login(hub, "agent.li")
    context_path = (
        f"/api/customers/{seeded.customer_id}/context?conversation_id={seeded.conversation_id}"
    )
    _, context = await call(hub, "GET", context_path, token=token)
    assert context["suggested_matches"] == [
        {"customer_id": other_id, "display_name": "James W", "evidence": ["same email"]}
    ]
    status, body = await call(
        hub,
        "POST",
        f"/api/customers/{seeded.customer_id}/merge",
        token=token,
        json={"other_customer_id": other_id, "reason": "customer confirmed the Messenger account"},
    )
    assert status == 200, body
    assert body["survivor_id"] == seeded.customer_id
    merge_id = body["merge_id"]
    # A conversation opened on the moved handle after the merge goes back with it on undo.
    async with database.write() as session:
        later = Conversation(
            customer_id=seeded.customer_id, identity_id=handle_id, channel="messenger"
        )
        session.add(later)
        await session.flush()
        later_id = later.id
    _, context = await call(hub, "GET", context_path, token=token)
    assert ("messenger", "psid-james") in {
        (i["channel"], i["address"]) for i in context["identities"]
    }
    assert old_contact_id in {c["conversation_id"] for c in context["contacts"]}

    status, body = await call(
        hub,
        "POST",
        f"/api/customer-merges/{merge_id}/undo",
        token=token,
        json={"reason": "wrong James, the customer says"},
    )
    assert status == 200, body
    async with database.read() as session:
        handle_row = await session.get(Identity, handle_id)
        old_row = await session.get(Conversation, old_contact_id)
        later_row = await session.get(Conversation, later_id)
        other_row = await session.get(Customer, other_id)
        merge = await session.get(CustomerMerge, merge_id)
        kept = await session.scalar(
            select(Identity.customer_id).where(
                Identity.channel == "sms", Identity.address == "+8613800001007"
            )
        )
    assert handle_row is not None and handle_row.customer_id == other_id
    assert old_row is not None and old_row.customer_id == other_id
    assert later_row is not None and later_row.customer_id == other_id
    assert other_row is not None and other_row.merged_into_id is None
    assert kept == seeded.customer_id
    assert merge is not None and merge.undone_at is not None and merge.undone_by == li
    assert merge.moved["identities"] == [handle_id]
    assert merge.moved["conversations"] == [old_contact_id]
    status, body = await call(
        hub,
        "POST",
        f"/api/customer-merges/{merge_id}/undo",
        token=token,
        json={"reason": "again, by mistake"},
    )
    assert status == 409 and body["code"] == "conflict"
    merges = await audit_rows(database, "customer.merge")
    undos = await audit_rows(database, "customer.merge_undo")
    assert [(r.actor, r.subject_id, r.reason) for r in merges] == [
        (
            f"staff:{li}:agent.li",
            str(seeded.customer_id),
            "customer confirmed the Messenger account",
        )
    ]
    assert merges[0].details["merged_id"] == other_id
    assert [(r.actor, r.reason) for r in undos] == [
        (f"staff:{li}:agent.li", "wrong James, the customer says")
    ]


async def test_an_agent_may_not_merge_with_an_unsuggested_record(running_hub: RunningHub) -> None:
    database = running_hub.hub.database
    li = await agent_id(database, "agent.li")
    seeded = await seed_conversation(
        database, external_id="C1007", channel="sms", address="+8613800001007", assigned_to=li
    )
    async with database.write() as session:
        stranger = Customer(display_name="Somebody", risk_tags=[], profile={})
        session.add(stranger)
        await session.flush()
        stranger_id = stranger.id
    status, body = await call(
        running_hub,
        "POST",
        f"/api/customers/{seeded.customer_id}/merge",
        token=await login(running_hub, "agent.li"),
        json={"other_customer_id": stranger_id, "reason": "I think it is the same person"},
    )
    assert status == 404 and body["code"] == "not_found"
    assert await audit_rows(database, "customer.merge") == []


async def test_two_firm_customers_are_never_merged_in_the_hub(running_hub: RunningHub) -> None:
    database = running_hub.hub.database
    seeded = await seed_conversation(
        database, external_id="C1007", channel="sms", address="+8613800001007"
    )
    other = await seed_conversation(
        database, external_id="C1008", channel="whatsapp", address="+8613800001008"
    )
    status, body = await call(
        running_hub,
        "POST",
        f"/api/customers/{seeded.customer_id}/merge",
        token=await login(running_hub, "supervisor.sun"),
        json={"other_customer_id": other.customer_id, "reason": "looks like the same person"},
    )
    assert status == 409 and body["code"] == "conflict"
