"""The one error taxonomy: every failure a user can see has a stable code and a sentence."""

from __future__ import annotations

from typing import Any, ClassVar


class HubError(Exception):
    """Base of every error the hub reports to a caller; rendered as JSON `{code, message}`."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ConfigurationError(HubError):
    """A setting is missing or invalid; raised at start-up."""

    code = "configuration_error"


class InvalidInput(HubError):
    """The request is malformed: wrong shape, wrong type, missing field."""

    code = "invalid_input"
    http_status = 400


class PayloadTooLarge(HubError):
    """The request or message is bigger than the hub accepts."""

    code = "payload_too_large"
    http_status = 413


class Unauthenticated(HubError):
    """No valid credentials were presented."""

    code = "unauthenticated"
    http_status = 401


class Forbidden(HubError):
    """Credentials are valid but do not allow this action, or a signature does not verify."""

    code = "forbidden"
    http_status = 403


class NotFound(HubError):
    """The resource does not exist (or the caller may not know it exists)."""

    code = "not_found"
    http_status = 404


class Conflict(HubError):
    """The request conflicts with the current state (duplicate id, stale version)."""

    code = "conflict"
    http_status = 409


class RateLimited(HubError):
    """Too many attempts in a short time (logins, one-time codes); try again later."""

    code = "rate_limited"
    http_status = 429


class ImportFailed(HubError):
    """An import file has a bad line; nothing from the file was stored."""

    code = "import_failed"
    http_status = 400


class ServiceUnavailable(HubError):
    """A dependency (database, bot, provider) is not reachable right now."""

    code = "service_unavailable"
    http_status = 503
