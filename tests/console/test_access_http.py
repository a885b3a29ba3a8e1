"""The HTTP half of the authorisation matrix: every role × every console and KB route.

The layout: agent.li holds conversation A (customer C1001) and is offered conversation B
(C1003); agent.wang holds conversation W (C1005). A second record of C1001's phone number
(customer Z) is a suggested match, so merging is possible. Every role runs every route,
and the status it gets must be exactly the contract's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from hub.domain import ConversationStatus
from hub.storage.models import AuditLog, Customer, Identity
from routing.merges import merge_customers
from tests.conftest import ADMIN_TOKEN, RunningHub
from tests.console.helpers import agent_id, call, customer_id, login, seed_conversation

ROLES = ["agent.li", "agent.wang", "supervisor.sun", "editor.xu", "admin.gao", "admin-token", None]


@dataclass(frozen=True)
class Layout:
    conversation_a: int
    conversation_b: int
    conversation_w: int
    c1001: int
    duplicate: int  # customer Z: C1001's number, a suggested match
    premerged: int  # a merge of another duplicate into C1001, made before the test


async def lay_out(hub: RunningHub) -> Layout:
    database = hub.hub.database
    li, wang = await agent_id(database, "agent.li"), await agent_id(database, "agent.wang")
    a = await seed_conversation(
        database,
        external_id="C1001",
        channel="sms",
        address="+8613800001001",
        texts=("我的卡号是6219997110665803518，理财什么时候到期",),
        assigned_to=li,
    )
    b = await seed_conversation(
        database,
        external_id="C1003",
        channel="sms",
        address="+8613800001003",
        status=ConversationStatus.QUEUED,
        offered_to=li,
        skill="cards",
    )
    w = await seed_conversation(
        database, external_id="C1005", channel="sms", address="+8613800001005", assigned_to=wang
    )
    async with database.write() as session:
        duplicates = []
        for channel in ("whatsapp", "messenger"):
            other = Customer(display_name="王建国", risk_tags=[], profile={})
            session.add(other)
            await session.flush()
            address = "+8613800001001" if channel == "whatsapp" else "psid-wang-1001"
            session.add(Identity(customer_id=other.id, channel=channel, address=address))
            duplicates.append(other.id)
        await session.flush()
        # The second duplicate shares no evidence; a supervisor merged it earlier.
        premerge = await merge_customers(
            session,
            a.customer_id,
            duplicates[1],
            reason="same person, confirmed by phone",
            actor="test",
            agent_id=None,
        )
    return Layout(
        a.conversation_id,
        b.conversation_id,
        w.conversation_id,
        await customer_id(database, "C1001"),
        duplicates[0],
        premerge.id,
    )


def expected(role: str | None, allowed: Collection[str], hidden: Collection[str] = ()) -> int:
    """200 for roles in `allowed`, 404 for `hidden` (agents who may not know), else 403."""
    if role is None:
        return 401
    if role in allowed:
        return 200
    return 404 if role in hidden else 403


EVERYONE = {"agent.li", "agent.wang", "supervisor.sun", "editor.xu", "admin.gao", "admin-token"}
CONSOLE = {"agent.li", "agent.wang", "supervisor.sun", "admin.gao", "admin-token"}
SEES_ALL = {"supervisor.sun", "admin.gao", "admin-token"}
EDITORS = {"editor.xu", "admin.gao", "admin-token"}
NOBODY: set[str] = set()


@dataclass(frozen=True)
class Check:
    """One cell of the matrix: a request (by its route) and the status a role must get."""

    method: str
    route: str  # the aiohttp route template, e.g. /api/conversations/{id}
    path: str
    body: object
    status: int


@dataclass(frozen=True)
class Articles:
    existing: str  # a demo article, for roles that may not edit (refused before anything)
    new: str  # created by this role if it may edit, then read, changed and deleted


def matrix(role: str | None, layout: Layout, articles: Articles) -> list[Check]:
    """Every staff-authorised HTTP route × this role, in an order that keeps each cell valid.

    agent.li holds conversation A and is offered B, agent.wang holds W; the checks that
    change data (merge, article edits, logout) come last.
    """
    mine = SEES_ALL | {"agent.li"}
    c, a = layout.c1001, layout.conversation_a
    editor = role in EDITORS
    article = articles.new if editor else articles.existing
    created = 201 if editor else expected(role, EDITORS)
    new_article = {
        "id": articles.new,
        "title": "矩阵测试",
        "body": "授权矩阵测试文章。",
        "lang": "zh",
    }
    changed = {"title": "矩阵测试（改）", "body": "授权矩阵测试文章，已修改。", "lang": "zh"}
    return [
        Check("GET", "/api/auth/me", "/api/auth/me", None, expected(role, EVERYONE)),
        Check("GET", "/api/conversations", "/api/conversations", None, expected(role, CONSOLE)),
        Check(
            "GET",
            "/api/conversations/{id}",
            f"/api/conversations/{a}",
            None,
            expected(role, mine, {"agent.wang"}),
        ),
        Check(
            "GET",
            "/api/conversations/{id}",
            f"/api/conversations/{layout.conversation_b}",
            None,
            expected(role, mine, {"agent.wang"}),
        ),
        Check(
            "GET",
            "/api/conversations/{id}",
            f"/api/conversations/{layout.conversation_w}",
            None,
            expected(role, SEES_ALL | {"agent.wang"}, {"agent.li"}),
        ),
        Check(
            "GET",
            "/api/customers/{id}/context",
            f"/api/customers/{c}/context?conversation_id={a}",
            None,
            expected(role, mine, {"agent.wang"}),
        ),
        Check(
            "GET",
            "/api/customers/{id}/context",
            f"/api/customers/{c}/context?reason=fraud%20review",
            None,
            expected(role, mine, {"agent.wang"}),
        ),
        Check(
            "POST",
            "/api/customers/{id}/reveal",
            f"/api/customers/{c}/reveal",
            {"field": "phone", "reason": "customer asked to confirm"},
            expected(role, SEES_ALL),
        ),
        Check(
            "GET",
            "/api/kb/suggest",
            f"/api/kb/suggest?conversation_id={a}",
            None,
            expected(role, mine, {"agent.wang"}),
        ),
        Check(
            "GET",
            "/api/canned-replies",
            "/api/canned-replies?language=zh",
            None,
            expected(role, CONSOLE),
        ),
        Check("GET", "/api/agents", "/api/agents", None, expected(role, CONSOLE)),
        Check("GET", "/api/metrics", "/api/metrics?days=1", None, expected(role, SEES_ALL)),
        Check("GET", "/api/kb/articles", "/api/kb/articles?limit=1", None, expected(role, EDITORS)),
        Check("GET", "/api/kb/unanswered", "/api/kb/unanswered", None, expected(role, EDITORS)),
        # The bot's API takes only the bot service token: no staff credential opens it.
        Check(
            "GET",
            "/api/bot/kb/answer",
            "/api/bot/kb/answer?q=%E7%90%86%E8%B4%A2",
            None,
            expected(role, NOBODY),
        ),
        Check(
            "GET",
            "/api/bot/conversations/{id}/holdings",
            f"/api/bot/conversations/{a}/holdings",
            None,
            expected(role, NOBODY),
        ),
        Check(
            "POST",
            "/api/customers/{id}/merge",
            f"/api/customers/{c}/merge",
            {"other_customer_id": layout.duplicate, "reason": "same phone, confirmed"},
            expected(role, mine, {"agent.wang"}),
        ),
        Check(
            "POST",
            "/api/customer-merges/{id}/undo",
            f"/api/customer-merges/{layout.premerged}/undo",
            {"reason": "merged by mistake"},
            expected(role, mine, {"agent.wang"}),
        ),
        Check("POST", "/api/kb/articles", "/api/kb/articles", new_article, created),
        Check(
            "GET",
            "/api/kb/articles/{id}",
            f"/api/kb/articles/{article}",
            None,
            expected(role, EDITORS),
        ),
        Check(
            "PUT",
            "/api/kb/articles/{id}",
            f"/api/kb/articles/{article}",
            changed,
            expected(role, EDITORS),
        ),
        Check(
            "GET",
            "/api/kb/articles/{id}/versions",
            f"/api/kb/articles/{article}/versions",
            None,
            expected(role, EDITORS),
        ),
        Check(
            "DELETE",
            "/api/kb/articles/{id}",
            f"/api/kb/articles/{article}",
            None,
            expected(role, EDITORS),
        ),
        Check("POST", "/api/auth/logout", "/api/auth/logout", {}, expected(role, EVERYONE)),
    ]


# Routes outside the staff matrix, each with the credential that guards it instead. Anything
# the app serves that is in neither list fails `test_the_matrix_covers_every_route`.
NOT_STAFF_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/auth/login"): "public: the login itself (tests/console/test_auth.py)",
    ("GET", "/api/kb/search"): "public: KB search (DESIGN.md external contract)",
    ("GET", "/healthz"): "public: health check",
    ("GET", "/"): "public: the demo site with the chat widget",
    ("GET", "/widget.js"): "public: the chat widget",
    ("GET", "/widget.css"): "public: the chat widget",
    ("GET", "/console"): "public: the console page (its API calls are authorised)",
    ("GET", "/console/"): "public: the console page",
    ("GET", "/console/assets/{name}"): "public: the console's built assets",
    ("GET", "/demo/customers"): "demo only: the demo site's sample customers",
    ("GET", "/demo/token"): "demo only: a signed identity token for a demo customer",
}
NOT_STAFF_PREFIXES: dict[str, str] = {
    "/socket.io/": "Socket.IO transport: events are in tests/console/test_access_events.py",
    "/channels/": "channel webhooks, verified by the provider's signature (tests/channels)",
    "/api/app/": "the firm's mobile app: the customer's signed identity token (tests/channels)",
}


async def article_ids(hub: RunningHub, role: str | None) -> Articles:
    status, listing = await call(hub, "GET", "/api/kb/articles?limit=1", token=ADMIN_TOKEN)
    assert status == 200 and listing["articles"], listing
    slug = (role or "anonymous").replace(".", "-")
    return Articles(existing=listing["articles"][0]["id"], new=f"matrix-{slug}")


@pytest.mark.parametrize("role", ROLES, ids=[r or "anonymous" for r in ROLES])
async def test_every_route_answers_each_role_as_the_contract_says(
    running_hub: RunningHub, role: str | None
) -> None:
    hub = running_hub
    layout = await lay_out(hub)
    token = None
    if role == "admin-token":
        token = ADMIN_TOKEN
    elif role is not None:
        token = await login(hub, role)
    wrong = []
    for check in matrix(role, layout, await article_ids(hub, role)):
        got, answer = await call(hub, check.method, check.path, token=token, json=check.body)
        if got != check.status:
            wrong.append((check.method, check.path, got, check.status, answer))
        elif got >= 400:
            assert set(answer) >= {"code", "message"}, answer
    assert wrong == [], role


async def test_the_matrix_covers_every_route(running_hub: RunningHub) -> None:
    """Every route the app serves is in the role matrix or named above with its credential."""
    dummy = Layout(1, 2, 3, 4, 5, 6)
    covered = {(c.method, c.route) for c in matrix(None, dummy, Articles("x", "y"))}
    missing = []
    for route in running_hub.app.router.routes():
        if route.method == "HEAD":  # aiohttp's automatic twin of every GET
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        template = str(info.get("path") or info.get("formatter") or info.get("prefix"))
        key = (route.method, template)
        if key in covered or key in NOT_STAFF_ROUTES:
            continue
        if any(template.startswith(prefix) for prefix in NOT_STAFF_PREFIXES):
            continue
        missing.append(key)
    assert missing == [], "routes without an entry in the authorisation matrix"
    served = {
        (r.method, str(r.resource.get_info().get("path") or r.resource.get_info().get("formatter")))
        for r in running_hub.app.router.routes()
        if r.resource is not None
    }
    assert covered <= served, "matrix entries for routes the app does not serve"


async def test_an_agent_never_sees_another_agents_conversation(running_hub: RunningHub) -> None:
    layout = await lay_out(running_hub)
    token = await login(running_hub, "agent.wang")
    status, body = await call(running_hub, "GET", "/api/conversations", token=token)
    assert status == 200
    ids = {c["id"] for c in body["conversations"]}
    assert ids == {layout.conversation_w}
    for path in (
        f"/api/conversations/{layout.conversation_a}",
        f"/api/conversations/{layout.conversation_a + 1000}",
    ):
        status, body = await call(running_hub, "GET", path, token=token)
        # The same answer for "exists but not yours" and "does not exist".
        assert status == 404 and body["code"] == "not_found"


async def test_agents_list_holds_what_is_assigned_or_offered_to_them(
    running_hub: RunningHub,
) -> None:
    layout = await lay_out(running_hub)
    token = await login(running_hub, "agent.li")
    _, body = await call(running_hub, "GET", "/api/conversations", token=token)
    assert {c["id"] for c in body["conversations"]} == {
        layout.conversation_a,
        layout.conversation_b,
    }
    _, queued = await call(running_hub, "GET", "/api/conversations?status=queued", token=token)
    assert [c["id"] for c in queued["conversations"]] == [layout.conversation_b]
    _, mine = await call(running_hub, "GET", "/api/conversations?mine=1", token=token)
    assert [c["id"] for c in mine["conversations"]] == [layout.conversation_a]
    supervisor = await login(running_hub, "supervisor.sun")
    _, everything = await call(running_hub, "GET", "/api/conversations", token=supervisor)
    assert {layout.conversation_a, layout.conversation_b, layout.conversation_w} <= {
        c["id"] for c in everything["conversations"]
    }


async def test_a_refused_reveal_writes_no_audit_row_and_reveals_nothing(
    running_hub: RunningHub,
) -> None:
    layout = await lay_out(running_hub)
    token = await login(running_hub, "agent.li")
    status, body = await call(
        running_hub,
        "POST",
        f"/api/customers/{layout.c1001}/reveal",
        token=token,
        json={"field": "national_id", "reason": "customer asked"},
    )
    assert status == 403 and "value" not in body
    async with running_hub.hub.database.read() as session:
        rows = list(
            await session.scalars(select(AuditLog).where(AuditLog.action == "customer.reveal"))
        )
    assert rows == []


async def test_the_transfer_list_names_colleagues_without_contact_details(
    running_hub: RunningHub,
) -> None:
    token = await login(running_hub, "agent.li")
    status, body = await call(running_hub, "GET", "/api/agents", token=token)
    assert status == 200, body
    keys = {"id", "display_name", "presence", "skills", "active_conversations", "capacity"}
    assert body["agents"] and all(set(a) == keys for a in body["agents"])
    ids = {a["id"] for a in body["agents"]}
    database = running_hub.hub.database
    assert await agent_id(database, "agent.wang") in ids
    # Editors (and admins without skills) never take conversations: not transfer targets.
    assert await agent_id(database, "editor.xu") not in ids
