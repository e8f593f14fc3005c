"""The leaderboard: the /leaderboard page (htmx swaps its ``board`` block) and its JSON API."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.arena.leaderboard import Service, load_categories
from app.errors import Invalid
from app.rating.board import Query, make_query
from app.rating.options import Options
from app.registry.core import Registry
from app.web.leaderboard_screen import LeaderboardScreen, leaderboard_screen
from app.web.views import fragment, page


def metadata(models: Registry) -> dict[str, dict[str, Any]]:
    return {e.id: {"name": e.spec.display_name, **e.spec.metadata.model_dump()} for e in models.all()}


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def _whole(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name) or str(default)
    if not raw.isdigit() or len(raw) > 9:
        raise Invalid(f"{name} must be a whole number", param=name)
    return int(raw)


def _query(state: State, params: dict[str, str]) -> Query:
    options = Options(
        inverse_probability=_flag(params.get("inverse_probability")),
        max_per_prompt=_whole(params, "max_per_prompt", 0),
        filter_voters=_flag(params.get("filter_voters")),
    )
    return make_query(
        category=params.get("category") or "overall",
        style_control=_flag(params.get("style_control")),
        ci=params.get("ci") or "sandwich",
        anchor=params.get("anchor") or None,
        rounds=_whole(params, "rounds", 100),
        options=options,
        provisional_votes=state.settings.provisional_votes,
    )


async def _board(state: State, params: dict[str, str]) -> dict[str, Any]:
    service: Service = state.leaderboard
    return await service.board(metadata(state.models), _query(state, params))


@get("/api/v1/leaderboard")
async def leaderboard_api(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    return await _board(state, dict(request.query_params))


async def _screen(request: HTMXRequest, state: State) -> LeaderboardScreen:
    params = {k: v for k, v in request.query_params.items() if v}
    board = await _board(state, params)
    service: Service = state.leaderboard
    counts = await service.counts(board["category"])
    return leaderboard_screen(board, params, await load_categories(state.store), counts)


@get("/leaderboard")
async def leaderboard_page(request: HTMXRequest, state: State) -> Template:
    screen = await _screen(request, state)
    if request.htmx:
        return fragment("leaderboard.html", "board", screen)
    return page("leaderboard.html", screen)


route_handlers = [leaderboard_api, leaderboard_page]
