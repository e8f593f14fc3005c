"""Errors that reach clients: one exception type, rendered OpenAI-shaped on /v1 and as JSON
``{"error": {...}}`` on the other JSON APIs. Pages render their own messages."""

from __future__ import annotations

from dataclasses import dataclass, field


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


def from_status(status: int, message: str) -> APIError:
    return APIError(status, message, STATUS_TYPES.get(status, "server_error"))
