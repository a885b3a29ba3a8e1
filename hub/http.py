"""HTTP plumbing shared by every route: one error middleware, JSON parsing, bearer tokens."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub.errors import Forbidden, HubError, InvalidInput, PayloadTooLarge, Unauthenticated

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ModelT = TypeVar("ModelT", bound=BaseModel)

# Response headers that keep a browser from treating our JSON or pages as something else.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def error_response(error: HubError) -> web.Response:
    return web.json_response(error.to_json(), status=error.http_status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure as `{code, message}` with the right status; never leak a traceback."""
    try:
        response = await handler(request)
    except HubError as error:
        response = error_response(error)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(PayloadTooLarge("The request body is too large."))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status, "http_error")
        response = web.json_response({"code": code, "message": error.reason}, status=error.status)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = web.json_response(
            {"code": "internal_error", "message": "Something went wrong on our side."}, status=500
        )
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def read_json(request: web.Request) -> Any:
    """Parse the request body as JSON or fail with a sentence."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as error:
        raise PayloadTooLarge("The request body is too large.") from error
    try:
        return json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(f"The request body is not valid JSON: {error}.") from error


async def read_model(request: web.Request, model: type[ModelT]) -> ModelT:
    """Parse the JSON body into `model`, turning validation errors into one clear message."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return parse_model(model, data)


def parse_model(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(describe_validation_error(error)) from error


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "Invalid input — " + "; ".join(parts) + "."


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_token(request: web.Request, expected: str, what: str) -> None:
    """Check a bearer token in constant time; 401 when missing, 403 when wrong."""
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated(f"This needs the {what} as 'Authorization: Bearer <token>'.")
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden(f"That is not the {what}.")


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}.") from error
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be from {low} to {high}.")
    return value
