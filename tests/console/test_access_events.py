"""The Socket.IO half of the authorisation matrix: every role × every console event.

Each cell starts from a fresh conversation in a known state (held by agent li, offered to
li, or held by agent wang) and checks the ack: `ok`, or the error code the contract gives
(an agent acting on another agent's conversation gets `not_found`, so it cannot even learn
that the conversation exists). Connections are refused for roles a namespace does not serve.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hub.domain import ConversationStatus
from hub.storage.models import Conversation
from knowledge.embedding import Embedder
from tests.conftest import ADMIN_TOKEN, RunningHub
from tests.console.console_client import ConsoleClient
from tests.console.helpers import Seeded, agent_id, call, seed_conversation
from tests.console.routing_helpers import login, routing_hub

_addresses = itertools.count(1)


def new_id() -> str:
    return uuid.uuid4().hex


EVENTS: dict[str, Callable[[Seeded], dict[str, Any]]] = {
    "accept": lambda c: {"conversation_id": c.conversation_id},
    "decline": lambda c: {"conversation_id": c.conversation_id},
    "send": lambda c: {"conversation_id": c.conversation_id, "text": "您好", "client_id": new_id()},
    "note": lambda c: {"conversation_id": c.conversation_id, "text": "备注", "client_id": new_id()},
    "typing": lambda c: {"conversation_id": c.conversation_id, "typing": True},
    "read": lambda c: {"conversation_id": c.conversation_id, "message_id": c.message_ids[0]},
    "transfer": lambda c: {"conversation_id": c.conversation_id, "to_skill": "cards", "note": "x"},
    "wrap_up": lambda c: {
        "conversation_id": c.conversation_id,
        "resolution": "resolved",
        "topic": "wealth",
    },
    "join": lambda c: {"conversation_id": c.conversation_id},
    "leave": lambda c: {"conversation_id": c.conversation_id},
    "take_over": lambda c: {"conversation_id": c.conversation_id},
    # The person's own state: no conversation involved, every role of /agent may.
    "presence": lambda _: {"status": "away"},
    "heartbeat": lambda _: {},
}
# Events that concern only the sender (their presence, their rooms): "ok" for every role the
# namespace admits, whatever the conversation.
_OWN = {"presence": "ok", "heartbeat": "ok", "leave": "ok"}
# `/supervisor` takes one client event; its cells are in
# test_supervisors_admins_and_the_admin_token_see_the_wallboard and the connection refusals.
SUPERVISOR_EVENTS = {"take_over"}

_AGENT_ON_OTHERS = (
    {e: "not_found" for e in EVENTS}
    | {
        "join": "forbidden",
        "take_over": "forbidden",
    }
    | _OWN
)
_SUPERVISING = {e: "ok" for e in EVENTS} | {"accept": "conflict", "decline": "conflict"}
# role → conversation → event → "ok" or the error code.
EXPECTED: dict[str, dict[str, dict[str, str]]] = {
    "agent.li": {
        "held_by_li": {e: "ok" for e in EVENTS}
        | {
            "accept": "not_found",
            "decline": "not_found",
            "join": "forbidden",
            "take_over": "forbidden",
        },
        "offered_to_li": {e: "forbidden" for e in EVENTS}
        | {"accept": "ok", "decline": "ok"}
        | _OWN,
        "held_by_wang": _AGENT_ON_OTHERS,
    },
    "supervisor.sun": {
        "held_by_li": _SUPERVISING,
        "offered_to_li": _SUPERVISING | {"send": "conflict", "typing": "conflict"},
        "held_by_wang": _SUPERVISING,
    },
    "admin.gao": {
        "held_by_li": _SUPERVISING,
        "offered_to_li": _SUPERVISING | {"send": "conflict", "typing": "conflict"},
        "held_by_wang": _SUPERVISING,
    },
}


@pytest_asyncio.fixture
async def hub(
    demo_template: Path, tmp_path: Path, embedders: list[Embedder]
) -> AsyncIterator[RunningHub]:
    async with routing_hub(demo_template, tmp_path, embedders) as running:
        yield running


async def lay_out(hub: RunningHub, target: str) -> Seeded:
    database = hub.hub.database
    li, wang = await agent_id(database, "agent.li"), await agent_id(database, "agent.wang")
    where = {
        "held_by_li": {"assigned_to": li},
        "offered_to_li": {"status": ConversationStatus.QUEUED, "offered_to": li},
        "held_by_wang": {"assigned_to": wang},
    }[target]
    return await seed_conversation(
        database,
        external_id="C1001",
        channel="webchat",
        address=f"visitor:matrix-{next(_addresses)}",
        **where,  # type: ignore[arg-type]
    )


def outcome(ack: dict[str, Any]) -> str:
    return "ok" if ack.get("ok") is True else str(ack["error"]["code"])


async def test_every_role_and_event_on_agent_is_answered_as_the_contract_says(
    hub: RunningHub,
) -> None:
    wrong: list[str] = []
    for username, targets in EXPECTED.items():
        client = await ConsoleClient(hub.base_url, await login(hub, username)).connect()
        try:
            for target, events in targets.items():
                for event, expected in events.items():
                    seeded = await lay_out(hub, target)
                    got = outcome(await client.call(event, EVENTS[event](seeded)))
                    if got != expected:
                        wrong.append(f"{username} {event} on {target}: {got}, expected {expected}")
        finally:
            await client.close()
    assert wrong == []


def client_events(handler: object) -> set[str]:
    """The client events a python-socketio class-based namespace handles (its `on_*`)."""
    names = {name.removeprefix("on_") for name in dir(handler) if name.startswith("on_")}
    return names - {"connect", "disconnect"}


async def test_the_matrix_covers_every_console_event(hub: RunningHub) -> None:
    """A new event on /agent or /supervisor without a matrix entry fails here."""
    handlers = hub.hub.sio.namespace_handlers
    assert client_events(handlers["/agent"]) == set(EVENTS)
    assert client_events(handlers["/supervisor"]) == SUPERVISOR_EVENTS
    for role, targets in EXPECTED.items():
        for target, events in targets.items():
            assert set(events) == set(EVENTS), (role, target)
    # Function-style handlers (`@sio.on(..., namespace=...)`) would bypass the namespaces.
    assert not any(hub.hub.sio.handlers.get(ns) for ns in ("/agent", "/supervisor"))


async def test_refused_actions_change_nothing(hub: RunningHub) -> None:
    li = await ConsoleClient(hub.base_url, await login(hub, "agent.li")).connect()
    try:
        seeded = await lay_out(hub, "held_by_wang")
        for event in ("send", "note", "transfer", "wrap_up", "accept", "take_over"):
            await li.call(event, EVENTS[event](seeded))
    finally:
        await li.close()
    async with hub.hub.database.read() as session:
        row = await session.get(Conversation, seeded.conversation_id)
    assert row is not None
    assert (row.status, row.assigned_agent_id, row.transfer_count) == (
        "assigned",
        await agent_id(hub.hub.database, "agent.wang"),
        0,
    )
    status, detail = await call(
        hub,
        "GET",
        f"/api/conversations/{seeded.conversation_id}",
        token=await login(hub, "supervisor.sun"),
    )
    assert status == 200
    assert [m["author"] for m in detail["messages"]] == ["customer"]


async def test_an_agent_never_hears_about_another_agents_conversation(hub: RunningHub) -> None:
    li = await ConsoleClient(hub.base_url, await login(hub, "agent.li")).connect()
    wang = await ConsoleClient(hub.base_url, await login(hub, "agent.wang")).connect()
    try:
        seeded = await lay_out(hub, "held_by_wang")
        await wang.ok("send", EVENTS["send"](seeded))
        await wang.ok("note", EVENTS["note"](seeded))
        await wang.next("message", lambda m: m["internal"] is True)
    finally:
        await wang.close()
        await li.close()
    assert li.of("message") == [] and li.of("message_status") == []


@pytest.mark.parametrize(
    ("credential", "namespace", "code"),
    [
        (None, "/agent", "unauthenticated"),
        ("not-a-session-token", "/agent", "unauthenticated"),
        ("editor.xu", "/agent", "forbidden"),
        ("admin-token", "/agent", "forbidden"),
        (None, "/supervisor", "unauthenticated"),
        ("not-a-session-token", "/supervisor", "unauthenticated"),
        ("editor.xu", "/supervisor", "forbidden"),
        ("agent.li", "/supervisor", "forbidden"),
    ],
)
async def test_connections_are_refused_for_roles_a_namespace_does_not_serve(
    hub: RunningHub, credential: str | None, namespace: str, code: str
) -> None:
    if credential is None or credential == "not-a-session-token":
        token = credential
    elif credential == "admin-token":
        token = ADMIN_TOKEN
    else:
        token = await login(hub, credential)
    refusal = await ConsoleClient(hub.base_url, token, namespace).try_connect()
    assert refusal["code"] == code and refusal["message"]


@pytest.mark.parametrize("credential", ["supervisor.sun", "admin.gao", "admin-token"])
async def test_supervisors_admins_and_the_admin_token_see_the_wallboard(
    hub: RunningHub, credential: str
) -> None:
    token = ADMIN_TOKEN if credential == "admin-token" else await login(hub, credential)
    board = await ConsoleClient(hub.base_url, token, "/supervisor").connect()
    try:
        snapshot = board.of("wallboard")[0]
        assert {"at", "queues", "agents", "today"} <= set(snapshot)
        seeded = await lay_out(hub, "held_by_wang")
        ack = await board.call("take_over", {"conversation_id": seeded.conversation_id})
    finally:
        await board.close()
    # The admin token is automation, not a person: it cannot hold a conversation.
    assert outcome(ack) == ("forbidden" if credential == "admin-token" else "ok")


async def test_a_logged_out_session_is_cut_off_at_the_next_event(hub: RunningHub) -> None:
    token = await login(hub, "agent.li")
    li = await ConsoleClient(hub.base_url, token).connect()
    assert outcome(await li.call("heartbeat", {})) == "ok"
    status, _ = await call(hub, "POST", "/api/auth/logout", token=token)
    assert status == 200
    assert outcome(await li.call("heartbeat", {})) == "unauthenticated"
    await li.close()


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("send", {"conversation_id": 1, "text": "hi"}),  # no client_id
        ("send", {"conversation_id": "one", "text": "hi", "client_id": "c"}),
        ("presence", {"status": "sleeping"}),
        ("wrap_up", {"conversation_id": 1, "resolution": "fixed", "topic": "x"}),
        ("transfer", {"conversation_id": 1, "to_skill": "Cards!"}),
        ("accept", "just a string"),
    ],
)
async def test_malformed_events_get_a_clear_error(
    hub: RunningHub, event: str, payload: Any
) -> None:
    li = await ConsoleClient(hub.base_url, await login(hub, "agent.li")).connect()
    try:
        ack = await li.call(event, payload)
    finally:
        await li.close()
    assert ack["error"]["code"] == "invalid_input" and ack["error"]["message"]


async def test_an_unknown_conversation_is_not_found_for_everyone(hub: RunningHub) -> None:
    for username in ("agent.li", "supervisor.sun", "admin.gao"):
        client = await ConsoleClient(hub.base_url, await login(hub, username)).connect()
        try:
            for event in ("send", "transfer", "wrap_up"):
                payload = EVENTS[event](Seeded(987654, 0, (1,)))
                assert outcome(await client.call(event, payload)) == "not_found", (username, event)
        finally:
            await client.close()
