"""Admin: /api/v1/admin (JSON) and /admin (a page), both behind the admin token.

With no token configured admin is off and every admin route answers 401.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template

from app.errors import DomainError, Invalid, NotFound, validated
from app.registry.core import Registry, UnknownModel
from app.registry.spec import ModelSpec
from app.routes.errors import APIError
from app.web.screens import admin_login_screen, admin_screen
from app.web.views import fragment, page

COOKIE = "arena_admin"


def _token_ok(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def _authorized(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else connection.cookies.get(COOKIE, "")
    return _token_ok(given, connection.app.state.settings.admin_token)


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if connection.app.state.settings.admin_token is None:
        raise APIError(
            401, "Admin is off: start the server with --admin-token or ARENA_ADMIN_TOKEN.", code="admin_disabled"
        )
    if not _authorized(connection):
        raise APIError(401, "A valid admin token is required.", code="invalid_admin_token")


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


@post("/models", status_code=201)
async def add_model(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    spec = validated(ModelSpec, await request.body())
    entry = await _registry(state).add(spec)
    return entry.describe()


@patch("/models/{model_id:str}")
async def edit_model(model_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    try:
        changes = await request.json()
    except Exception:  # noqa: BLE001 - any parse failure is the client's
        raise Invalid("The body must be a JSON object of fields to change.") from None
    if not isinstance(changes, dict):
        raise Invalid("The body must be a JSON object of fields to change.")
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


api_router = Router(
    path="/api/v1/admin",
    route_handlers=[list_models, get_model, add_model, edit_model, remove_model, model_action],
    guards=[admin_guard],
)


# -- the page ---------------------------------------------------------------------------------


@get("/admin/login")
async def login_page(state: State) -> Template:
    return page("admin.html", admin_login_screen(state.settings.admin_token is not None))


@post("/admin/login", status_code=200)
async def login(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    form = await request.form()
    if not _token_ok(str(form.get("token") or ""), state.settings.admin_token):
        return Response("Wrong admin token.", status_code=401, media_type="text/plain")
    response: Response[Any] = ClientRedirect("/admin")
    response.set_cookie(COOKIE, str(form.get("token")), httponly=True, samesite="strict", path="/")
    return response


@get("/admin")
async def admin_page(request: Request[Any, Any, Any], state: State) -> Template | Redirect:
    if not _authorized(request):
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


page_handlers = [login_page, login, admin_page, admin_action]
