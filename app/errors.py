"""Errors that reach clients: one exception type, rendered OpenAI-shaped on /v1 and as JSON
``{"error": {...}}`` on the other JSON APIs. Pages render their own messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass
class APIError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param, code)


def model_not_found(model: str) -> APIError:
    return APIError(404, f"The model `{model}` does not exist.", "invalid_request_error", "model", "model_not_found")


def unauthorized() -> APIError:
    return APIError(
        401,
        "Incorrect API key provided. Pass it as 'Authorization: Bearer <key>'.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    )


def overloaded(retry_after: int, message: str) -> APIError:
    return APIError(503, message, "server_error", None, "overloaded", {"Retry-After": str(retry_after)})


STATUS_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def validated(model: type[M], body: bytes) -> M:
    """Parse a JSON body into ``model``, or raise a 400 that names the offending field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if error["type"] == "json_invalid":
            raise invalid(f"We could not parse the JSON body of your request: {error['msg']}.") from None
        param = _param(tuple(error["loc"]))
        message = f"Invalid value for '{param}': {error['msg']}." if param else f"{error['msg']}."
        raise invalid(message, param) from None


def _param(loc: tuple[int | str, ...]) -> str | None:
    """Pydantic's error location as a field path, e.g. ``messages[0].role``.

    Union members show up in the location as type tags (``str``, ``list[TextPart]``); they are
    not fields, so they are left out.
    """
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p[:1].isupper() or p in _TYPE_TAGS))]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def from_status(status: int, message: str) -> APIError:
    return APIError(status, message, STATUS_TYPES.get(status, "server_error"))
