"""The leaderboard: the /leaderboard page (htmx swaps its ``board`` block) and its JSON API.

``board=judge&judge=ID`` gives a judge's board instead of the human one (see :func:`_judge_board`);
``include_flagged=true`` counts the votes of battles flagged for an identity leak."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.arena.leaderboard import Service, load_categories
from app.errors import Invalid, whole_number
from app.eval.judge_board import judge_board_json, judge_ids
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
    return whole_number(params.get(name) or str(default), name, digits=9)


def _query(state: State, params: dict[str, str]) -> Query:
    options = Options(
        inverse_probability=_flag(params.get("inverse_probability")),
        max_per_prompt=_whole(params, "max_per_prompt", 0),
        filter_voters=_flag(params.get("filter_voters")),
        include_flagged=_flag(params.get("include_flagged")),
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


BOARDS = ("human", "judge")


async def _judge_board(state: State, params: dict[str, str]) -> dict[str, Any]:
    judge = params.get("judge") or ""
    if len(judge) > 200:
        raise Invalid("judge is too long", param="judge")
    ci = params.get("ci") or "sandwich"
    return await judge_board_json(state.leaderboard, state.store, metadata(state.models), judge, ci)


async def _board(state: State, params: dict[str, str]) -> dict[str, Any]:
    board = params.get("board") or "human"
    if board not in BOARDS:
        raise Invalid(f"board must be one of {', '.join(BOARDS)}", param="board")
    if board == "judge":
        return await _judge_board(state, params)
    service: Service = state.leaderboard
    return await service.board(metadata(state.models), _query(state, params))


@get("/api/v1/leaderboard")
async def leaderboard_api(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    return await _board(state, dict(request.query_params))


async def _screen(request: HTMXRequest, state: State) -> LeaderboardScreen:
    params = {k: v for k, v in request.query_params.items() if v}
    board = await _board(state, params)
    service: Service = state.leaderboard
    counts = await service.counts(board["category"], "judge" if board.get("board") == "judge" else "anony")
    judges = await judge_ids(state.store)
    return leaderboard_screen(board, params, await load_categories(state.store), counts, judges=judges)


@get("/leaderboard")
async def leaderboard_page(request: HTMXRequest, state: State) -> Template:
    screen = await _screen(request, state)
    if request.htmx:
        return fragment("leaderboard.html", "board", screen)
    return page("leaderboard.html", screen)


route_handlers = [leaderboard_api, leaderboard_page]
