"""The leaderboard screen's typed context: leaderboard.html and its ``board`` block.

:func:`leaderboard_screen` turns a board (the API's JSON shape), the page's query parameters, the
categories that have votes and the category's pair counts into plain fields: the rows filtered
and sorted, every link and sort mark, the filter choices and the plots as SVG. The template reads
them and calls nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from app.arena.leaderboard import matrices
from app.rating.options import Counts
from app.web import plots

SIZES = {"small": (0, 3e9), "medium": (3e9, 30e9), "large": (30e9, float("inf"))}
SIZE_LABELS = {"small": "under 3B", "medium": "3B to 30B", "large": "over 30B"}
COLUMNS = (
    ("rank_ub", "Rank (UB)"),
    ("model", "Model"),
    ("rating", "Arena score"),
    ("ci", "95% CI"),
    ("votes", "Votes"),
    ("organization", "Organization"),
    ("license", "License"),
    ("parameters", "Parameters"),
)
ASCENDING = ("rank_ub", "model")  # sorted ascending unless the query says otherwise; others descending


@dataclass(frozen=True)
class Tab:
    """A category tab."""

    category: str
    label: str
    url: str
    selected: bool


@dataclass(frozen=True)
class Choice:
    """An option of a filter's select."""

    value: str
    label: str
    selected: bool


@dataclass(frozen=True)
class Column:
    """A sortable column heading: its link sorts by it (flipping the order if it is the sort)."""

    key: str
    title: str
    url: str
    mark: str  # " ▲" or " ▼" on the column the rows are sorted by, else ""


@dataclass(frozen=True)
class Row:
    """One model's row."""

    model: str
    name: str
    rank_ub: int
    rating: float
    ci_plus: float
    ci_minus: float
    votes: int
    provisional: bool
    organization: str
    license: str
    parameters: str
    raw_rank_ub: int | None  # without style control; None when style control is off
    raw_rating: float | None
    scores: list[float | None]  # one per benchmark column, in the board's order


@dataclass(frozen=True)
class Plots:
    """The three figures as inline SVG; the matrices are "" when the category has no battles."""

    intervals: str
    winrate: str = ""
    battles: str = ""


@dataclass(frozen=True)
class Figure:
    """A correlation figure with its interval, as text."""

    name: str
    value: str
    interval: str


@dataclass(frozen=True)
class Correlation:
    """How a judge's board ranks the models both boards cover, next to the human board's."""

    models: int
    figures: list[Figure]


@dataclass(frozen=True)
class LeaderboardScreen:
    """leaderboard.html and its ``board`` block."""

    category: str
    total_votes: int
    model_count: int
    updated_iso: str
    updated_text: str
    style_control: bool
    provisional_votes: int
    notice: str
    stale: bool
    coefficients: list[tuple[str, float]]
    sort: str  # as the query gave it ("" when it did not): the filter form carries it on
    order: str
    tabs: list[Tab]
    licenses: list[Choice]
    organizations: list[Choice]
    sizes: list[Choice]
    columns: list[Column]
    benchmarks: list[Column]
    rows: list[Row]
    plots: Plots
    nav: str = "leaderboard"
    include_flagged: bool = False
    board: str = "human"  # or "judge": a judge's board
    judge: str = ""
    boards: list[Tab] = field(default_factory=list)  # human votes, then one per judge; empty without judges
    correlation: Correlation | None = None


def parameter_count(text: str) -> float | None:
    """'270M' -> 2.7e8, '7B' -> 7e9, '1.5T' -> 1.5e12; None when unknown."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", text or "", re.IGNORECASE)
    if not m:
        return None
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[m.group(2).upper()]
    return float(m.group(1)) * scale


def sort_order(params: Mapping[str, str]) -> tuple[str, str]:
    """The column the rows are sorted by and the direction, "asc" or "desc"."""
    key = params.get("sort") or "rank_ub"
    return key, params.get("order") or default_order(key)


def default_order(key: str) -> str:
    return "asc" if key in ASCENDING else "desc"


def filtered(board: Mapping[str, Any], params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The board's models the filters keep, in the asked order."""
    rows = list(board["models"])
    if params.get("license"):
        rows = [r for r in rows if r["license"] == params["license"]]
    if params.get("organization"):
        rows = [r for r in rows if r["organization"] == params["organization"]]
    if params.get("size") in SIZES:
        lo, hi = SIZES[params["size"]]
        rows = [r for r in rows if (n := parameter_count(r["parameters"])) is not None and lo <= n < hi]
    key, order = sort_order(params)
    descending = order == "desc"
    benchmarks = board["benchmarks"]

    def sort_key(r: dict[str, Any]) -> Any:
        if key in benchmarks:
            v = r["scores"].get(key)
            return (v is None, v if v is not None else 0)
        if key == "ci":
            return r["ci_plus"] + r["ci_minus"]
        if key == "parameters":
            return parameter_count(r["parameters"]) or 0
        return r.get(key, r["rating"])

    rows.sort(key=sort_key, reverse=descending)
    if key in benchmarks and descending:  # models without the score stay last
        rows.sort(key=lambda r: r["scores"].get(key) is None)
    return rows


def link(params: Mapping[str, str], **changes: str) -> str:
    """This page with ``changes`` made to its query; empty parameters are left out."""
    merged = {**params, **changes}
    query = urlencode({k: v for k, v in merged.items() if v})
    return f"/leaderboard?{query}" if query else "/leaderboard"


def column(params: Mapping[str, str], key: str, title: str) -> Column:
    current, order = sort_order(params)
    if key != current:
        return Column(key, title, link(params, sort=key, order=default_order(key)), "")
    flipped = {"asc": "desc", "desc": "asc"}[order]
    return Column(key, title, link(params, sort=key, order=flipped), " ▲" if order == "asc" else " ▼")


def tab(params: Mapping[str, str], category: str, current: str) -> Tab:
    label = category.replace("_", " ").replace("language:", "lang: ")
    return Tab(category, label, link(params, category=category), category == current)


def choices(values: Sequence[str], chosen: str | None, labels: Mapping[str, str] | None = None) -> list[Choice]:
    return [Choice(v, (labels or {}).get(v, v), chosen == v) for v in values]


def present(models: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    """The values the models have for ``key``, sorted, without the empty one."""
    return sorted({r[key] for r in models if r[key]})


def row(r: Mapping[str, Any], benchmarks: Sequence[str]) -> Row:
    return Row(
        r["model"],
        r["name"],
        r["rank_ub"],
        r["rating"],
        r["ci_plus"],
        r["ci_minus"],
        r["votes"],
        bool(r.get("provisional")),
        r["organization"],
        r["license"],
        r["parameters"],
        r.get("raw_rank_ub"),
        r.get("raw_rating"),
        [r["scores"].get(k) for k in benchmarks],
    )


def figures(models: Sequence[dict[str, Any]], counts: Counts | None) -> Plots:
    """The intervals of every model, and the win-rate and battle matrices in board order."""
    intervals = plots.intervals_svg(models)
    if counts is None or not counts.total:
        return Plots(intervals)
    names = {r["model"]: r["name"] for r in models}
    labels, win, count = matrices(counts, [r["model"] for r in models])
    shown = [names.get(m, m) for m in labels]
    return Plots(
        intervals,
        plots.heatmap_svg(shown, win, "Win rate, row vs column (%)", percent=True),
        plots.heatmap_svg(shown, count, "Battles between each pair", percent=False),
    )


def board_tabs(params: Mapping[str, str], judges: Sequence[str], board: str, judge: str) -> list[Tab]:
    """The human board's tab and one per judge (none when no judge has verdicts)."""
    if not judges:
        return []
    category = "" if board == "judge" else params.get("category", "")  # a judge's category is not the human board's
    human = Tab("", "Human votes", link(params, board="", judge="", category=category), board != "judge")
    return [human] + [
        Tab(
            f"judge:{j}",
            f"Judge: {j}",
            link(params, board="judge", judge=j, category=""),
            board == "judge" and j == judge,
        )
        for j in judges
    ]


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:.2f}"


def correlation(board: Mapping[str, Any]) -> Correlation | None:
    """The judge board's rank correlation with the human board, as text (None on a human board)."""
    found = board.get("correlation")
    if not found:
        return None
    figures = []
    for key, name in (("spearman", "Spearman ρ"), ("kendall", "Kendall τ-b")):
        f = found[key]
        interval = "" if f["lower"] is None else f"95% CI {_number(f['lower'])} to {_number(f['upper'])}"
        figures.append(Figure(name, _number(f["value"]), interval))
    return Correlation(len(found["models"]), figures)


def leaderboard_screen(
    board: Mapping[str, Any],
    params: Mapping[str, str],
    categories: Sequence[str],
    counts: Counts | None,
    *,
    judges: Sequence[str] = (),
) -> LeaderboardScreen:
    """The screen for ``board`` as the page's query ``params`` filter and sort it; ``judges``
    with verdicts stored get a tab each."""
    models, benchmarks = board["models"], list(board["benchmarks"])
    kind, judge = board.get("board") or "human", board.get("judge") or ""
    updated = datetime.fromtimestamp(board["updated"], tz=UTC)
    return LeaderboardScreen(
        category=board["category"],
        total_votes=board["total_votes"],
        model_count=len(models),
        updated_iso=updated.isoformat(timespec="seconds"),
        updated_text=updated.strftime("%Y-%m-%d %H:%M:%S UTC"),
        style_control=bool(board["style_control"]),
        provisional_votes=board.get("provisional_votes") or 0,
        notice=board.get("notice") or "",
        stale=bool(board.get("stale")),
        coefficients=list((board.get("coefficients") or {}).items()),
        sort=params.get("sort", ""),
        order=params.get("order", ""),
        tabs=[] if kind == "judge" else [tab(params, c, board["category"]) for c in categories or ["overall"]],
        licenses=choices(present(models, "license"), params.get("license")),
        organizations=choices(present(models, "organization"), params.get("organization")),
        sizes=choices(list(SIZES), params.get("size"), SIZE_LABELS),
        columns=[column(params, key, title) for key, title in COLUMNS],
        benchmarks=[column(params, key, key) for key in benchmarks],
        rows=[row(r, benchmarks) for r in filtered(board, params)],
        plots=figures(models, counts),
        include_flagged=(board.get("options") or {}).get("include_flagged", False),
        board=kind,
        judge=judge,
        boards=board_tabs(params, judges, kind, judge),
        correlation=correlation(board),
    )
