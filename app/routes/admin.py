"""Admin: /api/v1/admin (JSON) and /admin (a page), both behind the admin token.

With no token configured admin is off and every admin route answers 401. Logging in on the page
(throttled per IP) sets a signed, expiring session cookie, never the token itself; over HTTPS it
is ``Secure`` and named with the ``__Host-`` prefix (so no subdomain or plain-http page can plant
one). Logging out ends the session on the server: its nonce is kept until it would have expired,
and the cookie, replayed, signs in no more. The JSON API takes a bearer token (wrong ones are
throttled per IP, with the login form), or that session plus the page's CSRF token in
``X-CSRFToken``; a body must be ``application/json``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from typing import Any, Literal

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.csrf import generate_csrf_hash
from litestar.params import FromPath
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from pydantic import BaseModel, ConfigDict, Field

from app.arena.visitors import client_ip
from app.errors import WHOLE_NUMBER, DomainError, Invalid, NotFound, validated
from app.moderation.log import flag_afterwards
from app.registry.core import Registry, UnknownModel
from app.registry.spec import ModelSpec, check_api_key_env
from app.routes.common import limit, visitor
from app.routes.errors import APIError
from app.routes.openapi import json_body
from app.routes.security_headers import is_https
from app.store.admin_sessions import end_session
from app.web.screens import admin_login_screen, admin_screen
from app.web.views import fragment, page

COOKIE = "arena_admin"
HOST_COOKIE = "__Host-" + COOKIE  # the name over https


def cookie_name(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return HOST_COOKIE if is_https(connection.scope) else COOKIE


def _token_ok(given: str, expected: str | None) -> bool:
    """An empty token is never right (settings turn an empty one into no token)."""
    return bool(given and expected) and hmac.compare_digest(given.encode(), str(expected).encode())


def _session_key(state: State) -> bytes:
    """Signs sessions; derived from the admin token too, so changing the token ends every session."""
    token = state.settings.admin_token or ""
    return hmac.new(state.secret.encode(), b"admin-session\x00" + token.encode(), hashlib.sha256).digest()


def new_session(state: State, now: float | None = None) -> str:
    """``EXPIRY.NONCE.SIGNATURE``: an expiring, signed session value (the token is not in it)."""
    expires = int((now or time.time()) + state.settings.admin_session_hours * 3600)
    payload = f"{expires}.{secrets.token_urlsafe(16)}"
    signature = hmac.new(_session_key(state), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{signature}"


def session_ok(state: State, value: str, now: float | None = None) -> bool:
    expires, _, rest = value.partition(".")
    nonce, _, signature = rest.partition(".")
    if (
        not WHOLE_NUMBER.fullmatch(expires)
        or not nonce
        or state.settings.admin_token is None
        or nonce in state.ended_sessions
    ):
        return False
    expected = hmac.new(_session_key(state), f"{expires}.{nonce}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.encode(), expected.encode()) and int(expires) > (now or time.time())


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _csrf_ok(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """The page's CSRF token (double submit): the header equals the cookie, signed by our secret."""
    header = connection.headers.get("x-csrftoken", "")
    cookie = connection.cookies.get("csrftoken", "")
    token, signature = header[:64], header[64:]
    if not header or not hmac.compare_digest(header.encode(), cookie.encode()):
        return False
    expected = generate_csrf_hash(token=token, secret=connection.app.state.secret)
    return hmac.compare_digest(signature.encode(), expected.encode())


def _bearer_ok(connection: ASGIConnection[Any, Any, Any, Any], token: str) -> bool:
    """A bearer token, throttled per IP like the login form: each wrong one counts in the
    --login-rate window, and while that is full every bearer token is refused (429), the right
    one too, so guessing cannot go on. With admin off there is nothing to guess or count."""
    state = connection.app.state
    if state.settings.admin_token is None:
        return False
    peer = connection.client.host if connection.client else None
    ip = client_ip(peer, connection.headers, state.settings.trusted_proxies)
    state.throttle.check("login", ip)
    if _token_ok(token, state.settings.admin_token):
        return True
    state.throttle.count("login", ip)
    return False


def is_admin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """A valid bearer token or a valid session cookie (for reading; writes need more, see the guard)."""
    state = connection.app.state
    token = _bearer(connection)
    if token is not None:
        return _bearer_ok(connection, token)
    return session_ok(state, connection.cookies.get(cookie_name(connection), ""))


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if connection.app.state.settings.admin_token is None:
        raise APIError(
            401, "Admin is off: start the server with --admin-token or ARENA_ADMIN_TOKEN.", code="admin_disabled"
        )
    if not is_admin(connection):
        raise APIError(401, "A valid admin token is required.", code="invalid_admin_token")


def api_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The JSON API: a body is JSON; a change is made with a bearer token, or a session plus CSRF."""
    admin_guard(connection, handler)
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json":
        raise APIError(415, "Send the body as JSON, with Content-Type: application/json.")
    if connection.scope.get("method") in SAFE_METHODS or _bearer(connection) is not None:
        return
    if not _csrf_ok(connection):
        raise APIError(
            403,
            "With a session cookie, changes need the page's CSRF token in X-CSRFToken; "
            "or send 'Authorization: Bearer <admin token>'.",
            code="csrf_required",
        )


def _registry(state: State) -> Registry:
    return state.models


# -- JSON API ---------------------------------------------------------------------------------


@get("/models")
async def list_models(state: State) -> dict[str, Any]:
    registry = _registry(state)
    return {
        "models": [e.describe() for e in registry.all()],
        "memory": {
            "in_use_mb": registry.memory_in_use() // (1024 * 1024),
            "budget_mb": registry.memory_budget // (1024 * 1024),
        },
    }


@get("/models/{model_id:str}")
async def get_model(model_id: FromPath[str], state: State) -> dict[str, Any]:
    return _registry(state).get(model_id).describe()


@post("/models", status_code=201, operation_class=json_body(ModelSpec))
async def add_model(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    spec = validated(ModelSpec, await request.body())
    check_api_key_env(spec, state.settings.remote_env_prefix)
    entry = await _registry(state).add(spec)
    return entry.describe()


@patch("/models/{model_id:str}", operation_class=json_body(ModelSpec, "The fields to change.", partial=True))
async def edit_model(model_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    try:
        changes = await request.json()
    except Exception:  # noqa: BLE001 - any parse failure is the client's
        raise Invalid("The body must be a JSON object of fields to change.") from None
    if not isinstance(changes, dict):
        raise Invalid("The body must be a JSON object of fields to change.")
    if "api_key_env" in changes:
        probe = ModelSpec(id="check", api_key_env=str(changes["api_key_env"]))
        check_api_key_env(probe, state.settings.remote_env_prefix)
    entry = await _registry(state).update(model_id, changes)
    return entry.describe()


@delete("/models/{model_id:str}", status_code=200)
async def remove_model(model_id: FromPath[str], state: State) -> dict[str, Any]:
    await _registry(state).remove(model_id)
    return {"id": model_id, "removed": True}


ACTIONS = ("pause", "resume", "load", "unload")


async def _act(registry: Registry, model_id: str, action: str) -> Any:
    if action == "pause":
        return await registry.set_state(model_id, "paused")
    if action == "resume":
        return await registry.set_state(model_id, "active")
    if action == "load":
        return await registry.load(model_id, strict=True)
    if action == "unload":
        return await registry.unload(model_id)
    raise NotFound(f"action must be one of {', '.join(ACTIONS)}")


@post("/models/{model_id:str}/{action:str}", status_code=200)
async def model_action(model_id: FromPath[str], action: FromPath[str], state: State) -> dict[str, Any]:
    entry = await _act(_registry(state), model_id, action)
    return entry.describe()


class FlagBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Literal["moderation", "identity"] = Field("moderation", description="Why the battle is flagged.")
    note: str = Field("", max_length=500, description="Free text for the moderation log.")


@post("/battles/{battle_id:str}/flag", status_code=200, operation_class=json_body(FlagBody))
async def flag_battle(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    """Flag a battle afterwards: its vote leaves the default board (logged in moderation_log)."""
    body = validated(FlagBody, await request.body() or b"{}")
    changed = await state.store.write(flag_afterwards(battle_id, body.reason, "admin", body.note))
    if changed:
        state.leaderboard.bump()
    row = await state.store.fetchone("SELECT flags FROM battles WHERE id = ?", (battle_id,))
    return {"id": battle_id, "flags": (row["flags"] if row else "").split(), "changed": changed}


api_router = Router(
    path="/api/v1/admin",
    route_handlers=[list_models, get_model, add_model, edit_model, remove_model, model_action, flag_battle],
    guards=[api_guard],
)


# -- the page ---------------------------------------------------------------------------------


@get("/admin/login")
async def login_page(state: State) -> Template:
    return page("admin.html", admin_login_screen(state.settings.admin_token is not None))


@post("/admin/login", status_code=200)
async def login(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    limit(state, "login", visitor(request, state)[0])
    form = await request.form()
    if not _token_ok(str(form.get("token") or ""), state.settings.admin_token):
        return Response("Wrong admin token.", status_code=401, media_type="text/plain")
    response: Response[Any] = ClientRedirect("/admin")
    _set_session_cookie(request, response, new_session(state), int(state.settings.admin_session_hours * 3600))
    return response


def _set_session_cookie(request: Request[Any, Any, Any], response: Response[Any], value: str, max_age: int) -> None:
    https = is_https(request.scope)
    response.set_cookie(
        cookie_name(request), value, max_age=max_age, httponly=True, secure=https, samesite="strict", path="/"
    )


@post("/admin/logout", status_code=200)
async def logout(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    """Ends this session on the server (not only in the browser) and clears the cookie."""
    value = request.cookies.get(cookie_name(request), "")
    if session_ok(state, value):
        expires, nonce, _ = value.split(".", 2)
        state.ended_sessions.add(nonce)  # at once, before the write lands
        await state.store.write(end_session(nonce, int(expires)))
    response: Response[Any] = ClientRedirect("/admin/login")
    _set_session_cookie(request, response, "", 0)
    return response


@get("/admin")
async def admin_page(request: Request[Any, Any, Any], state: State) -> Template | Redirect:
    if not is_admin(request):
        return Redirect("/admin/login")
    return page("admin.html", admin_screen(_registry(state)))


@post("/admin/models/{model_id:str}/{action:str}", guards=[admin_guard], status_code=200)
async def admin_action(
    model_id: FromPath[str], action: FromPath[str], request: Request[Any, Any, Any], state: State
) -> Template:
    registry = _registry(state)
    error = ""
    try:
        if action == "remove":
            await registry.remove(model_id)
        else:
            await _act(registry, model_id, action)
    except DomainError as exc:
        error = f"No model {model_id}." if isinstance(exc, UnknownModel) else exc.message
    return fragment("admin.html", "table", admin_screen(registry, error))


@post("/admin/battles/flag", guards=[admin_guard], status_code=200)
async def admin_flag(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """The page's flag form: the same write as the API; the answer is a line for #flag-result."""
    form = await request.form()
    battle_id, reason = str(form.get("battle_id") or "").strip(), str(form.get("reason") or "moderation")
    changed = await state.store.write(flag_afterwards(battle_id, reason, "admin", str(form.get("note") or "")[:500]))
    if changed:
        state.leaderboard.bump()
    done = "flagged" if changed else "was already flagged"
    return Response(f"Battle {html.escape(battle_id)} {done} ({html.escape(reason)}).", media_type="text/html")


page_handlers = [login_page, login, logout, admin_page, admin_action, admin_flag]
