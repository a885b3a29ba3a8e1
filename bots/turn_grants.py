"""Turn grants: short-lived proof that the hub itself asked the bot about a conversation.

The bot service token alone would let whoever holds it (the action server, and so anyone who
compromises it) read the holdings of every verified conversation by walking conversation
ids. So each time the hub sends a customer message to Rasa it mints a grant for that
conversation, HMAC-signed with a key only hub processes derive, and passes it in the
message metadata; the holdings API serves a conversation only with a live grant for it.
The grant is stateless, so any hub process behind a load balancer can check it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

DEFAULT_TTL = 120.0  # seconds: a turn, its actions and a slow Rasa fit well inside
_KEY_LABEL = b"servicehub bot turn grant v1"


class TurnGrants:
    """Mint and check grants of the form `<expiry>.<hmac>` bound to one conversation id."""

    def __init__(
        self, key: bytes, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        if len(key) < 32:
            raise ValueError("a turn grant key needs at least 32 bytes")
        self._key = key
        self._ttl = ttl
        self._clock = clock

    @classmethod
    def from_secret(cls, secret: str, ttl: float = DEFAULT_TTL) -> TurnGrants:
        """Derive the key from a secret every hub process shares (the identity secret)."""
        key = hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()
        return cls(key, ttl)

    def issue(self, conversation_id: int) -> str:
        """Return a grant for `conversation_id`, valid for the grant lifetime."""
        expires = int(self._clock() + self._ttl)
        return f"{expires}.{self._sign(conversation_id, expires)}"

    def is_valid(self, conversation_id: int, grant: str) -> bool:
        """Tell whether `grant` was minted for `conversation_id` and has not expired."""
        expires_text, _, signature = grant.partition(".")
        if not expires_text.isdigit() or not signature:
            return False
        expires = int(expires_text)
        if expires < self._clock():
            return False
        return hmac.compare_digest(signature, self._sign(conversation_id, expires))

    def _sign(self, conversation_id: int, expires: int) -> str:
        message = f"{conversation_id}.{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
