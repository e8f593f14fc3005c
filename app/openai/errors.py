"""The OpenAI error object, ``{"error": {message, type, param, code}}``, for domain errors and
for the face's own refusals. The JSON APIs under /api/v1 answer in the same shape."""

from __future__ import annotations

from app.errors import Busy, DomainError, Failed, RateLimited, Unavailable

ErrorBody = dict[str, dict[str, str | None]]


def body(message: str, type_: str, param: str | None = None, code: str | None = None) -> ErrorBody:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_type(error: DomainError) -> str:
    """OpenAI's ``type``: the client's mistake, a rate limit, or the server's side."""
    if isinstance(error, RateLimited):
        return "rate_limit_exceeded"
    if isinstance(error, (Busy, Unavailable, Failed)):
        return "server_error"
    return "invalid_request_error"


def domain_body(error: DomainError) -> ErrorBody:
    return body(error.message, error_type(error), error.param, error.code)
