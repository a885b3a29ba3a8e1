"""Staff logins: password check, expiring session tokens (stored hashed), rate limiting.

A session token is 32 random bytes, given to the client once; the database keeps only its
SHA-256, so a database leak does not leak live sessions. Every attempt is recorded, which
both rate-limits guessing across hub processes and leaves an audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import utcnow
from hub.errors import Forbidden, HubError, RateLimited, Unauthenticated
from hub.http import bearer_token
from hub.passwords import hash_password, verify_password
from hub.permissions import Permission, Role, has_permission
from hub.storage.database import Database
from hub.storage.models import Agent, LoginAttempt, StaffSession

DEFAULT_SESSION_LIFETIME = timedelta(hours=10)
RATE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_IP = 20
# Verifying against a fixed hash when the user does not exist keeps the response time the
# same, so timing does not tell which usernames exist.
_DUMMY_HASH = hash_password("servicehub-timing-equaliser")


class InvalidCredentials(HubError):
    """The username or password is wrong (one answer for both, so usernames stay secret)."""

    code = "invalid_credentials"
    http_status = 401


@dataclass(frozen=True)
class Staff:
    """An authenticated staff member, as handlers see them."""

    id: int
    username: str
    display_name: str
    role: Role
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    max_concurrent: int
    locale: str

    @classmethod
    def of(cls, agent: Agent) -> Staff:
        return cls(
            id=agent.id,
            username=agent.username,
            display_name=agent.display_name,
            role=Role(agent.role),
            skills=tuple(agent.skills or ()),
            languages=tuple(agent.languages or ()),
            max_concurrent=agent.max_concurrent,
            locale=agent.locale or "zh",
        )

    @property
    def actor(self) -> str:
        """How audit records name this person."""
        if self.is_service:
            return "admin-token"
        return f"staff:{self.id}:{self.username}"

    @property
    def is_service(self) -> bool:
        """Say whether this is the admin token (automation), not a person with an agent row."""
        return self.id == SERVICE_STAFF_ID

    @property
    def agent_id(self) -> int | None:
        """The `agents.id` to record in foreign keys (none for the admin token)."""
        return None if self.is_service else self.id

    def can(self, permission: Permission) -> bool:
        """Say whether this person's role grants `permission`."""
        return has_permission(self.role, permission)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "skills": list(self.skills),
            "languages": list(self.languages),
            "max_concurrent": self.max_concurrent,
            "locale": self.locale,
        }


# `SERVICEHUB_ADMIN_TOKEN` stays an admin credential for automation (the contract); it acts
# as this staff member, whom audit rows name "admin-token".
SERVICE_STAFF_ID = 0
ADMIN_TOKEN_STAFF = Staff(
    id=SERVICE_STAFF_ID,
    username="admin-token",
    display_name="Admin token (automation)",
    role=Role.ADMIN,
    skills=(),
    languages=(),
    max_concurrent=0,
    locale="en",
)


@dataclass(frozen=True)
class IssuedSession:
    token: str
    expires_at: datetime
    staff: Staff


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def _recent_failures(session: AsyncSession, who: ColumnElement[bool]) -> int:
    since = utcnow() - RATE_WINDOW
    count = await session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(who, LoginAttempt.at >= since, LoginAttempt.success.is_(False))
    )
    return int(count or 0)


async def check_rate_limit(session: AsyncSession, username: str, ip: str | None) -> None:
    """Refuse further attempts after too many recent failures for this username or address."""
    if (
        await _recent_failures(session, LoginAttempt.username == username)
        >= MAX_FAILURES_PER_USERNAME
    ):
        raise RateLimited("Too many failed logins for this user; try again in 15 minutes.")
    if ip and await _recent_failures(session, LoginAttempt.ip == ip) >= MAX_FAILURES_PER_IP:
        raise RateLimited("Too many failed logins from this address; try again in 15 minutes.")


async def log_in(
    session: AsyncSession,
    username: str,
    password: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    lifetime: timedelta = DEFAULT_SESSION_LIFETIME,
) -> IssuedSession:
    """Check the password and open a session; record the attempt either way.

    The caller must commit even when this raises `InvalidCredentials`, so the failure counts.
    """
    username = username.strip().lower()
    await check_rate_limit(session, username, ip)
    agent = await session.scalar(select(Agent).where(func.lower(Agent.username) == username))
    # Always verify exactly one hash, so the time taken says nothing about the account.
    stored = agent.password_hash if agent is not None and agent.password_hash else None
    password_ok = verify_password(stored or _DUMMY_HASH, password)
    ok = agent is not None and agent.active and stored is not None and password_ok
    session.add(LoginAttempt(username=username, ip=ip, success=ok))
    if not ok or agent is None:
        raise InvalidCredentials("The username or password is not right.")
    token = secrets.token_urlsafe(32)
    expires_at = utcnow() + lifetime
    session.add(
        StaffSession(
            agent_id=agent.id,
            token_hash=token_hash(token),
            expires_at=expires_at,
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    return IssuedSession(token=token, expires_at=expires_at, staff=Staff.of(agent))


async def authenticate(session: AsyncSession, token: str | None) -> Staff:
    """Return the staff member behind a live session token, or raise `Unauthenticated`."""
    if not token:
        raise Unauthenticated("Log in first: this needs 'Authorization: Bearer <session token>'.")
    row = await session.scalar(
        select(StaffSession).where(StaffSession.token_hash == token_hash(token))
    )
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise Unauthenticated("The session has expired or was ended; log in again.")
    agent = await session.get(Agent, row.agent_id)
    if agent is None or not agent.active:
        raise Unauthenticated("This staff account is disabled.")
    return Staff.of(agent)


async def log_out(session: AsyncSession, token: str) -> None:
    """End the session behind `token` (no error when it is already gone)."""
    row = await session.scalar(
        select(StaffSession).where(StaffSession.token_hash == token_hash(token))
    )
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


async def authenticate_bearer(session: AsyncSession, token: str | None, admin_token: str) -> Staff:
    """Return who a bearer token belongs to: the admin token, or a live staff session."""
    if token and admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return ADMIN_TOKEN_STAFF
    return await authenticate(session, token)


def require_permission(staff: Staff, permission: Permission) -> None:
    """Raise `Forbidden` unless the staff member's role grants `permission`."""
    if not staff.can(permission):
        raise Forbidden(
            f"Your role ({staff.role.value}) may not do this "
            f"(it needs {permission.value.replace('_', ' ')})."
        )


async def staff_from_request(request: web.Request, database: Database, admin_token: str) -> Staff:
    """Authenticate an HTTP request's bearer token (session token or the admin token)."""
    token = bearer_token(request)
    async with database.read() as session:
        return await authenticate_bearer(session, token, admin_token)
