"""The one place errors become HTTP.

Domain errors from the core (:mod:`app.errors`) and the face's own refusals (:class:`APIError`:
a missing key, a wrong media type) are answered OpenAI-shaped on /v1, as the same JSON on
/api/, as a message fragment for htmx, and as plain text elsewhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.htmx import HTMXRequest
from litestar.types import ExceptionHandlersMap

from app.errors import (
    Busy,
    Conflict,
    DomainError,
    Failed,
    Forbidden,
    Invalid,
    NoRoom,
    NotFound,
    RateLimited,
    StorageFull,
    Unavailable,
    shown,
)
from app.openai.errors import ErrorBody, body, domain_body
from app.web import views

log = logging.getLogger("app")

# Most specific first: the first class in an error's MRO found here gives its status.
STATUS: dict[type[DomainError], int] = {
    RateLimited: 429,
    NoRoom: 507,
    StorageFull: 507,
    Busy: 503,
    Unavailable: 503,
    Failed: 500,
    Invalid: 400,
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
}
STATUS_TYPES = {429: "rate_limit_exceeded"}


@dataclass
class APIError(Exception):
    """A refusal of the HTTP face itself (authentication, media type, routing): it has a status."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> ErrorBody:
        return body(self.message, self.type, self.param, self.code)


def from_status(status: int, message: str) -> APIError:
    kind = STATUS_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return APIError(status, message, kind)


def unauthorized() -> APIError:
    return APIError(
        401,
        "Incorrect API key provided. Pass it as 'Authorization: Bearer <key>'.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    )


def status_of(error: DomainError) -> int:
    return next(STATUS[cls] for cls in type(error).__mro__ if cls in STATUS)


def from_domain(error: DomainError) -> APIError:
    """The HTTP answer for a domain error: its status, body and Retry-After."""
    shape = domain_body(error)["error"]
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return APIError(status_of(error), error.message, str(shape["type"]), error.param, error.code, headers)


def _is_json_api(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    return path.startswith("/v1") or path.startswith("/api/")


def respond(request: Request[Any, Any, Any], error: APIError) -> Response[Any]:
    if _is_json_api(request):
        return Response(error.body(), status_code=error.status, headers=error.headers)
    if isinstance(request, HTMXRequest) and request.htmx:
        return views.flash(error.message, error.status, error.headers)
    return Response(error.message, status_code=error.status, headers=error.headers, media_type=MediaType.TEXT)


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    return respond(request, from_domain(exc))


def on_api_error(request: Request[Any, Any, Any], exc: APIError) -> Response[Any]:
    return respond(request, exc)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    message = shown(exc.detail or "Request failed.", 300)
    if exc.status_code == 404:
        message = f"No route for {request.method} {shown(request.url.path)}."
    elif exc.status_code == 413:
        message = "The request body is larger than the configured limit."
    elif isinstance(exc, ValidationException):
        message = f"Invalid request: {shown(exc.detail, 300)}"
    error = from_status(exc.status_code, message)
    error.headers = dict(exc.headers or {})
    return respond(request, error)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return respond(request, APIError(500, "The server had an error.", "server_error"))


HANDLERS: ExceptionHandlersMap = {
    DomainError: on_domain_error,
    APIError: on_api_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}
