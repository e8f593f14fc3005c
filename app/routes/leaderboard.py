"""The leaderboard: the /leaderboard page (htmx swaps its ``board`` block) and its JSON API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.response import Template

from app.arena.leaderboard import Service, load_categories, matrices
from app.errors import Invalid
from app.rating.board import Query, make_query
from app.rating.options import Options
from app.registry.core import Registry
from app.web import plots
from app.web.views import block

SIZES = {"small": (0, 3e9), "medium": (3e9, 30e9), "large": (30e9, float("inf"))}
SORTABLE = ("rank_ub", "model", "rating", "ci", "votes", "organization", "license", "parameters")


def metadata(models: Registry) -> dict[str, dict[str, Any]]:
    return {e.id: {"name": e.spec.display_name, **e.spec.metadata.model_dump()} for e in models.all()}


def parameter_count(text: str) -> float | None:
    """'270M' -> 2.7e8, '7B' -> 7e9, '1.5T' -> 1.5e12; None when unknown."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", text or "", re.IGNORECASE)
    if not m:
        return None
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[m.group(2).upper()]
    return float(m.group(1)) * scale


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


def _filtered(board: dict[str, Any], params: dict[str, str]) -> list[dict[str, Any]]:
    rows = list(board["models"])
    if params.get("license"):
        rows = [r for r in rows if r["license"] == params["license"]]
    if params.get("organization"):
        rows = [r for r in rows if r["organization"] == params["organization"]]
    if params.get("size") in SIZES:
        lo, hi = SIZES[params["size"]]
        rows = [r for r in rows if (n := parameter_count(r["parameters"])) is not None and lo <= n < hi]
    key = params.get("sort") or "rank_ub"
    descending = (params.get("order") or ("asc" if key in ("rank_ub", "model") else "desc")) == "desc"

    def sort_key(r: dict[str, Any]) -> Any:
        if key in board["benchmarks"]:
            v = r["scores"].get(key)
            return (v is None, v if v is not None else 0)
        if key == "ci":
            return r["ci_plus"] + r["ci_minus"]
        if key == "parameters":
            return parameter_count(r["parameters"]) or 0
        return r.get(key, r["rating"])

    rows.sort(key=sort_key, reverse=descending)
    if key in board["benchmarks"] and descending:  # models without the score stay last
        rows.sort(key=lambda r: r["scores"].get(key) is None)
    return rows


def _context(board: dict[str, Any], params: dict[str, str], categories: list[str], counts: Any) -> dict[str, Any]:
    rows = _filtered(board, params)
    names = {r["model"]: r["name"] for r in board["models"]}
    order = [r["model"] for r in board["models"]]
    svg = {"intervals": plots.intervals_svg(board["models"]), "winrate": "", "battles": ""}
    if counts is not None and counts.total:
        labels, win, count = matrices(counts, order)
        shown = [names.get(m, m) for m in labels]
        svg["winrate"] = plots.heatmap_svg(shown, win, "Win rate, row vs column (%)", percent=True)
        svg["battles"] = plots.heatmap_svg(shown, count, "Battles between each pair", percent=False)

    def link(**changes: str) -> str:
        merged = {**params, **changes}
        return "/leaderboard?" + urlencode({k: v for k, v in merged.items() if v})

    def sort_link(key: str) -> str:
        current = params.get("sort") or "rank_ub"
        default = "asc" if key in ("rank_ub", "model") else "desc"
        order = params.get("order") or default
        flipped = {"asc": "desc", "desc": "asc"}[order] if key == current else default
        return link(sort=key, order=flipped)

    def sort_mark(key: str) -> str:
        if key != (params.get("sort") or "rank_ub"):
            return ""
        order = params.get("order") or ("asc" if key in ("rank_ub", "model") else "desc")
        return " ▲" if order == "asc" else " ▼"

    updated = datetime.fromtimestamp(board["updated"], tz=UTC)
    return {
        "link": link,
        "sort_link": sort_link,
        "sort_mark": sort_mark,
        "updated_iso": updated.isoformat(timespec="seconds"),
        "updated_text": updated.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "board": board,
        "rows": rows,
        "params": params,
        "categories": categories or ["overall"],
        "licenses": sorted({r["license"] for r in board["models"] if r["license"]}),
        "organizations": sorted({r["organization"] for r in board["models"] if r["organization"]}),
        "sizes": list(SIZES),
        "sortable": [*SORTABLE, *board["benchmarks"]],
        "svg": svg,
        "nav": "leaderboard",
    }


async def _page_context(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    params = {k: v for k, v in request.query_params.items() if v}
    board = await _board(state, params)
    service: Service = state.leaderboard
    counts = await service.counts(board["category"])
    return _context(board, params, await load_categories(state.store), counts)


@get("/leaderboard")
async def leaderboard_page(request: Request[Any, Any, Any], state: State) -> Template | Response[str]:
    context = await _page_context(request, state)
    if request.headers.get("hx-request") == "true":
        return block(request, "leaderboard.html", "board", **context)
    return Template(template_name="leaderboard.html", context=context)


route_handlers = [leaderboard_api, leaderboard_page]
