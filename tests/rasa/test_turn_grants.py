"""Turn grants: bound to one conversation, short-lived, unforgeable without the hub's key."""

from __future__ import annotations

from bots.turn_grants import TurnGrants

SECRET = "test-identity-secret-0123456789-abcdef"


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_grant_is_valid_for_its_conversation_until_it_expires() -> None:
    clock = Clock()
    grants = TurnGrants(b"k" * 32, ttl=60, clock=clock)
    grant = grants.issue(42)
    assert grants.is_valid(42, grant)
    assert not grants.is_valid(43, grant)
    clock.now += 61
    assert not grants.is_valid(42, grant)


def test_grants_cannot_be_forged_or_stretched() -> None:
    grants = TurnGrants.from_secret(SECRET)
    grant = grants.issue(5)
    expires, signature = grant.split(".")
    assert not grants.is_valid(5, f"{int(expires) + 3600}.{signature}")
    assert not grants.is_valid(5, f"{expires}.{'0' * len(signature)}")
    assert not grants.is_valid(5, "")
    assert not grants.is_valid(5, "garbage")
    other_hub = TurnGrants.from_secret("another-secret-0123456789-0123456789")
    assert not other_hub.is_valid(5, grant)
    assert TurnGrants.from_secret(SECRET).is_valid(5, grant)  # any hub process with the secret
