"""Identity tokens signed by the firm: a web or app visitor who carries one is that customer.

The token is a JWT (HS256: HMAC-SHA256) with `sub` = the firm's customer id and `exp`;
the secret is shared between the firm's site and the hub (`SERVICEHUB_IDENTITY_SECRET`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from hub.clock import utcnow

ALGORITHM = "HS256"
MAX_LIFETIME = timedelta(days=1)  # longer-lived tokens are refused: they outlive a login session


@dataclass(frozen=True)
class IdentityClaim:
    customer_id: str
    expires_at: datetime
    name: str | None = None


class InvalidIdentityToken(Exception):
    """The token is malformed, expired, too long-lived, or not signed with our secret."""


def issue_identity_token(
    secret: str, customer_id: str, lifetime: timedelta = timedelta(hours=1), name: str | None = None
) -> str:
    """Sign a token for `customer_id` (what the firm's site does; the hub does it for the demo)."""
    now = utcnow()
    claims: dict[str, object] = {"sub": customer_id, "iat": now, "exp": now + lifetime}
    if name:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_identity_token(secret: str, token: str) -> IdentityClaim:
    """Return the claim of a valid token, or raise `InvalidIdentityToken` saying why."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.PyJWTError as error:
        raise InvalidIdentityToken(str(error)) from error
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 64:
        raise InvalidIdentityToken("the token's subject must be a customer id of 1-64 characters")
    expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo)
    if expires_at - utcnow() > MAX_LIFETIME:
        raise InvalidIdentityToken("the token lives longer than a day; issue short-lived tokens")
    name = claims.get("name")
    return IdentityClaim(
        customer_id=subject.strip(),
        expires_at=expires_at,
        name=name if isinstance(name, str) else None,
    )
