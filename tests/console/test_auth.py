"""Staff login on the running hub: sessions, expiry, logout, rate limiting, the admin token."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from hub.clock import utcnow
from hub.staff_auth import token_hash
from hub.storage.models import Agent, LoginAttempt, StaffSession
from tests.conftest import ADMIN_TOKEN, RunningHub
from tests.console.helpers import PASSWORDS, call, login

STAFF_KEYS = {
    "id",
    "username",
    "display_name",
    "role",
    "skills",
    "languages",
    "max_concurrent",
    "locale",
}


async def test_login_returns_an_expiring_token_and_the_staff_member(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    status, body = await call(
        hub, "POST", "/api/auth/login", json={"username": "agent.li", "password": "demo-li-wealth"}
    )
    assert status == 200, body
    assert set(body) == {"token", "expires_at", "staff"}
    assert set(body["staff"]) == STAFF_KEYS
    assert body["staff"]["role"] == "agent" and "wealth" in body["staff"]["skills"]
    lifetime = datetime.fromisoformat(body["expires_at"]) - utcnow()
    assert timedelta(hours=9, minutes=59) < lifetime <= timedelta(hours=10)

    status, me = await call(hub, "GET", "/api/auth/me", token=body["token"])
    assert status == 200 and me == body["staff"]

    async with hub.hub.database.read() as session:
        stored = await session.scalar(
            select(StaffSession).where(StaffSession.token_hash == token_hash(body["token"]))
        )
        hashed = await session.scalar(
            select(Agent.password_hash).where(Agent.username == "agent.li")
        )
    # Neither the token nor the password is stored as given.
    assert stored is not None and stored.token_hash != body["token"]
    assert hashed is not None and hashed.startswith("$argon2id$")


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    running_hub: RunningHub,
) -> None:
    wrong_password = await call(
        running_hub, "POST", "/api/auth/login", json={"username": "agent.li", "password": "x"}
    )
    no_such_user = await call(
        running_hub, "POST", "/api/auth/login", json={"username": "nobody", "password": "x"}
    )
    assert wrong_password[0] == no_such_user[0] == 401
    assert wrong_password[1] == no_such_user[1]
    assert wrong_password[1]["code"] == "invalid_credentials"


async def test_logout_revokes_the_token(running_hub: RunningHub) -> None:
    token = await login(running_hub, "supervisor.sun")
    assert (await call(running_hub, "GET", "/api/auth/me", token=token))[0] == 200
    status, _ = await call(running_hub, "POST", "/api/auth/logout", token=token)
    assert status == 200
    status, body = await call(running_hub, "GET", "/api/auth/me", token=token)
    assert status == 401 and body["code"] == "unauthenticated"


async def test_an_expired_session_is_refused(running_hub: RunningHub) -> None:
    token = await login(running_hub, "agent.wang")
    async with running_hub.hub.database.write() as session:
        await session.execute(
            update(StaffSession)
            .where(StaffSession.token_hash == token_hash(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    status, body = await call(running_hub, "GET", "/api/auth/me", token=token)
    assert status == 401 and body["code"] == "unauthenticated"


async def test_five_failures_lock_the_username_even_for_the_right_password(
    running_hub_any_db: RunningHub,
) -> None:
    hub = running_hub_any_db
    for _ in range(5):
        status, _ = await call(
            hub, "POST", "/api/auth/login", json={"username": "agent.zhou", "password": "guess"}
        )
        assert status == 401
    status, body = await call(
        hub,
        "POST",
        "/api/auth/login",
        json={"username": "agent.zhou", "password": "demo-zhou-english"},
    )
    assert status == 429 and body["code"] == "rate_limited"
    # Another user from the same address is not locked out by someone else's failures.
    assert await login(hub, "agent.li")
    async with hub.hub.database.read() as session:
        failures = await session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.username == "agent.zhou", LoginAttempt.success.is_(False))
        )
    assert failures == 5


async def test_twenty_failures_from_one_address_lock_the_address(running_hub: RunningHub) -> None:
    for attempt in range(20):
        status, _ = await call(
            running_hub,
            "POST",
            "/api/auth/login",
            json={"username": f"guess-{attempt}", "password": "nope"},
        )
        assert status == 401
    status, body = await call(
        running_hub,
        "POST",
        "/api/auth/login",
        json={"username": "agent.li", "password": PASSWORDS["agent.li"]},
    )
    assert status == 429 and body["code"] == "rate_limited"


async def test_bad_login_input_is_a_400(running_hub: RunningHub) -> None:
    status, body = await call(running_hub, "POST", "/api/auth/login", json={"username": "x"})
    assert status == 400 and body["code"] == "invalid_input"


async def test_the_admin_token_is_an_admin_credential(running_hub: RunningHub) -> None:
    status, body = await call(running_hub, "GET", "/api/auth/me", token=ADMIN_TOKEN)
    assert status == 200 and body["role"] == "admin" and body["username"] == "admin-token"
    status, body = await call(running_hub, "GET", "/api/auth/me", token="not-a-token")
    assert status == 401 and body["code"] == "unauthenticated"


async def test_a_disabled_account_cannot_use_its_session(running_hub: RunningHub) -> None:
    token = await login(running_hub, "agent.li")
    async with running_hub.hub.database.write() as session:
        await session.execute(
            update(Agent).where(Agent.username == "agent.li").values(active=False)
        )
    status, _ = await call(running_hub, "GET", "/api/auth/me", token=token)
    assert status == 401
    status, body = await call(
        running_hub,
        "POST",
        "/api/auth/login",
        json={"username": "agent.li", "password": PASSWORDS["agent.li"]},
    )
    assert status == 401 and body["code"] == "invalid_credentials"
