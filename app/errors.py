"""Domain errors: what the core raises when it refuses a request or cannot serve it now.

Each carries a message for people and, where it helps a client, the request field at fault
(``param``) and a machine-readable ``code``. None knows an HTTP status: the routes turn them
into HTTP in one place (:mod:`app.routes.errors`).
"""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class DomainError(Exception):
    """A request the core refused or could not serve."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __str__(self) -> str:
        return self.message


class Invalid(DomainError):
    """The request itself is wrong: a bad field, a rule it breaks."""


class NotFound(DomainError):
    """No such battle, model or answer."""


class Forbidden(DomainError):
    """Not open to this visitor: a mode the server does not offer, a model kept out of a mode."""


class Conflict(DomainError):
    """The request does not fit the current state (a second vote, a busy battle)."""


class Busy(DomainError):
    """Too much at once; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int = 1, param: str | None = None, code: str | None = None):
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after


class RateLimited(Busy):
    """This client sent too many requests; retry after ``retry_after`` seconds."""


class Unavailable(DomainError):
    """Cannot serve it right now (a model is down, too few models); maybe later."""

    def __init__(
        self, message: str, *, retry_after: int | None = None, param: str | None = None, code: str | None = None
    ):
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after


class NoRoom(Unavailable):
    """Not enough memory (or GPU) to load a model."""


class StorageUnavailable(Unavailable):
    """The database takes no writes now: its file or folder is read-only, or the disk fails."""


class StorageFull(StorageUnavailable):
    """The database's disk is full."""


class Failed(DomainError):
    """The work was tried and broke (an engine fault); the server's side, not the client's."""


WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")  # ASCII digits only: "²".isdigit() is True, int("²") fails
SHOWN_CHARS = 80


def whole_number(raw: str, name: str, *, digits: int = 18) -> int:
    """A whole number from a request (query, form field, header): ASCII digits, at most ``digits``
    of them (18 fit SQLite's integers), or :class:`Invalid` naming ``name``."""
    if not WHOLE_NUMBER.fullmatch(raw) or len(raw) > digits:
        raise Invalid(f"{name} must be a whole number of at most {digits} digits, not '{shown(raw)}'.", param=name)
    return int(raw)


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value from a request as an error message may echo it: cut to ``limit`` characters, so a
    100 KB model id does not come back whole."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def validated(model: type[M], body: bytes) -> M:
    """Parse a JSON body into ``model``, or raise :class:`Invalid` naming the offending field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if error["type"] == "json_invalid":
            raise Invalid(f"We could not parse the JSON body of your request: {error['msg']}.") from None
        param = _param(tuple(error["loc"]))
        message = f"Invalid value for '{param}': {error['msg']}." if param else f"{error['msg']}."
        raise Invalid(message, param=param) from None


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
