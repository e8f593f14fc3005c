"""The leaderboard screen's context builder, called directly on a board in the API's shape: no
HTTP, no service. And its ``board`` block renders from the typed fields alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from jinja2 import StrictUndefined
from jinja2_fragments import render_block

from app.rating.options import Counts
from app.web import views
from app.web.leaderboard_screen import (
    Choice,
    LeaderboardScreen,
    Tab,
    leaderboard_screen,
    parameter_count,
)

UPDATED = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def model(name: str, rating: float, rank: int, **extra: Any) -> dict[str, Any]:
    row = {
        "model": name,
        "name": name.title(),
        "rating": rating,
        "ci_lower": rating - 10,
        "ci_upper": rating + 12,
        "ci_plus": 12.0,
        "ci_minus": 10.0,
        "rank_ub": rank,
        "votes": 100 * rank,
        "provisional": False,
        "organization": "",
        "license": "",
        "parameters": "",
        "scores": {},
    }
    return {**row, **extra}


def board(**extra: Any) -> dict[str, Any]:
    models = [
        model("top", 1100.0, 1, organization="Org B", license="MIT", parameters="7B", scores={"MMLU": 70.0}),
        model("mid", 1050.0, 2, organization="Org A", license="Apache-2.0", parameters="270M", scores={"MMLU": None}),
        model("low", 1000.0, 3, organization="Org A", license="MIT", parameters="70B", scores={"MMLU": 80.0}),
    ]
    out = {
        "models": models,
        "total_votes": 600,
        "updated": UPDATED,
        "category": "overall",
        "style_control": False,
        "benchmarks": ["MMLU"],
        "coefficients": {},
        "notice": None,
        "stale": False,
        "provisional_votes": 30,
    }
    return {**out, **extra}


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_rows_keep_the_board_order_and_the_summary_is_plain_fields() -> None:
    screen = leaderboard_screen(board(), {}, ["overall", "coding"], None)
    assert isinstance(screen, LeaderboardScreen)
    assert [r.model for r in screen.rows] == ["top", "mid", "low"]
    assert (screen.total_votes, screen.model_count, screen.category, screen.nav) == (600, 3, "overall", "leaderboard")
    assert (screen.updated_iso, screen.updated_text) == ("2023-11-14T22:13:20+00:00", "2023-11-14 22:13:20 UTC")
    assert (screen.notice, screen.stale, screen.coefficients, screen.provisional_votes) == ("", False, [], 30)
    assert (screen.sort, screen.order) == ("", "")
    top = screen.rows[0]
    assert (top.name, top.rank_ub, top.votes, top.organization, top.scores) == ("Top", 1, 100, "Org B", [70.0])
    assert (top.raw_rank_ub, top.raw_rating) == (None, None)


def test_sort_links_flip_only_the_current_column_and_mark_it() -> None:
    screen = leaderboard_screen(board(), {"sort": "rating", "order": "asc", "license": "MIT"}, [], None)
    assert [r.model for r in screen.rows] == ["low", "top"]  # MIT only, lowest score first
    columns = {c.key: c for c in screen.columns}
    assert list(columns) == ["rank_ub", "model", "rating", "ci", "votes", "organization", "license", "parameters"]
    assert columns["rating"].mark == " ▲"
    assert query(columns["rating"].url) == {"sort": ["rating"], "order": ["desc"], "license": ["MIT"]}
    assert columns["model"].mark == ""
    assert query(columns["model"].url)["order"] == ["asc"]  # another column starts in its own direction
    assert query(columns["votes"].url)["order"] == ["desc"]
    assert (screen.sort, screen.order) == ("rating", "asc")
    default = leaderboard_screen(board(), {}, [], None)
    assert [(c.key, c.mark) for c in default.columns if c.mark] == [("rank_ub", " ▲")]


def test_a_benchmark_sort_leaves_models_without_the_score_last() -> None:
    screen = leaderboard_screen(board(), {"sort": "MMLU", "order": "desc"}, [], None)
    assert [r.model for r in screen.rows] == ["low", "top", "mid"]
    assert [r.scores for r in screen.rows] == [[80.0], [70.0], [None]]
    (mmlu,) = screen.benchmarks
    assert (mmlu.key, mmlu.title, mmlu.mark) == ("MMLU", "MMLU", " ▼")
    by_size = leaderboard_screen(board(), {"sort": "parameters", "order": "asc"}, [], None)
    assert [r.parameters for r in by_size.rows] == ["270M", "7B", "70B"]


def test_filters_offer_what_the_models_have_and_select_the_asked_one() -> None:
    screen = leaderboard_screen(board(), {"organization": "Org A", "size": "large"}, [], None)
    assert [r.model for r in screen.rows] == ["low"]
    assert screen.organizations == [Choice("Org A", "Org A", True), Choice("Org B", "Org B", False)]
    assert screen.licenses == [Choice("Apache-2.0", "Apache-2.0", False), Choice("MIT", "MIT", False)]
    assert screen.sizes == [
        Choice("small", "under 3B", False),
        Choice("medium", "3B to 30B", False),
        Choice("large", "over 30B", True),
    ]
    assert (parameter_count("1.5T"), parameter_count("about seven")) == (1.5e12, None)


def test_tabs_link_each_category_keeping_the_other_parameters() -> None:
    params = {"category": "coding", "style_control": "1", "sort": "votes"}
    screen = leaderboard_screen(board(category="coding"), params, ["overall", "coding", "language:fr"], None)
    assert [(t.category, t.label, t.selected) for t in screen.tabs] == [
        ("overall", "overall", False),
        ("coding", "coding", True),
        ("language:fr", "lang: fr", False),
    ]
    assert query(screen.tabs[2].url) == {"category": ["language:fr"], "style_control": ["1"], "sort": ["votes"]}
    assert leaderboard_screen(board(), {}, [], None).tabs == [
        Tab("overall", "overall", "/leaderboard?category=overall", True)
    ]


def test_style_control_brings_the_raw_ranking_and_coefficients() -> None:
    models = [model("top", 1100.0, 1, raw_rank_ub=2, raw_rating=1090.5), model("low", 1000.0, 2)]
    styled = board(models=models, benchmarks=[], style_control=True, coefficients={"length": 0.25}, stale=True)
    screen = leaderboard_screen(styled, {"style_control": "1"}, [], None)
    assert screen.style_control and screen.stale
    assert screen.coefficients == [("length", 0.25)]
    assert [(r.raw_rank_ub, r.raw_rating) for r in screen.rows] == [(2, 1090.5), (None, None)]


def test_plots_are_svg_and_the_matrices_need_battles() -> None:
    alone = leaderboard_screen(board(), {}, [], None).plots
    assert alone.intervals.startswith("<svg") and alone.intervals.count("<circle") == 3
    assert (alone.winrate, alone.battles) == ("", "")
    counts = Counts(["top", "mid"], ["mid", "low"], [6.0, 3.0], [2.0, 1.0], [1.0, 0.0])
    plots = leaderboard_screen(board(), {}, [], counts).plots
    assert plots.winrate.startswith("<svg") and "Win rate" in plots.winrate
    assert plots.battles.startswith("<svg") and "Battles between each pair" in plots.battles
    assert plots.winrate.index(">Top<") < plots.winrate.index(">Mid<") < plots.winrate.index(">Low<")
    assert leaderboard_screen(board(models=[]), {}, [], None).plots.intervals == ""


def test_the_board_block_renders_from_the_fields_alone() -> None:
    """Strict: a name the template reads that the screen lacks fails here instead of rendering empty."""
    env = views.environment().overlay(undefined=StrictUndefined)
    screen = leaderboard_screen(board(), {"sort": "MMLU", "order": "desc"}, ["overall", "coding"], None)
    html = render_block(env, "leaderboard.html", "board", **views.context_of(screen))
    assert html.lstrip().startswith('<section id="board">')
    assert html.index('data-model="low"') < html.index('data-model="top"') < html.index('data-model="mid"')
    assert 'data-category="coding"' in html and "MMLU ▼" in html
