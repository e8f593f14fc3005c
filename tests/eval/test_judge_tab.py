"""The leaderboard's judge tab: a judge's board from its battles (mode judge), its rank correlation
with the human board, and the benchmark columns (MT-bench-style score, win rate against the
baseline); JSON on /api/v1/leaderboard?board=judge and the page's tab. The human board is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.errors import Invalid
from app.eval.context import EvalContext
from app.eval.runs import run_pairwise, run_single, run_tournament
from app.eval.suites import Prompt, Suite
from app.rating.board import make_query
from app.server import create_app
from app.settings import Settings
from tests.eval.human_battles import MODELS, MODELS_TOML, ReadingJudge, seed
from tests.helpers.arena import Client, parse_html, serve

SUITE = Suite("mini", (Prompt("p1", ("Explain tides.",)), Prompt("p2", ("Explain rain.",))), "test")
PLAYERS = sorted(MODELS)  # model-x1 (good) > model-y2 (meh) > model-z3 (bad)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    path = tmp_path / "models.toml"
    path.write_text(MODELS_TOML)
    app = create_app(Settings(models=path, db=tmp_path / "arena.db"))
    async with serve(app) as c:
        yield c


async def _evaluate(c: Client) -> None:
    await seed(c.app.state.store)  # the human votes
    c.app.state.models.get("judge").engine = ReadingJudge(max_context=8192)
    ctx = EvalContext(c.app.state.models, c.app.state.store, c.app.state.metrics)
    await run_tournament(ctx, SUITE, PLAYERS, "judge")
    await run_pairwise(ctx, SUITE, ["model-x1", "model-y2"], "judge", "model-z3")
    await run_single(ctx, SUITE, PLAYERS, "judge")


async def test_the_judge_board_as_json(client: Client) -> None:
    await _evaluate(client)
    r = await client.get("/api/v1/leaderboard", params={"board": "judge", "judge": "judge"})
    assert r.status_code == 200, r.text
    board = r.json()
    assert (board["board"], board["judge"], board["judges"], board["category"]) == (
        "judge",
        "judge",
        ["judge"],
        "judge:judge",
    )
    assert [m["model"] for m in board["models"]] == PLAYERS
    # tournament: 3 pairs x 2 prompts; pairwise: 2 pairs x 2 prompts, with z3 (the tournament's x1-z3 and
    # y2-z3 battles were the same answers, so cached: one battle each)
    assert board["total_votes"] == 6
    corr = board["correlation"]
    assert corr["models"] == PLAYERS
    assert corr["spearman"]["value"] == 1.0 and corr["kendall"]["value"] == 1.0 and corr["spearman"]["n"] == 3
    mt, win = "MT-bench (mini)", "Win % vs model-z3 (mini)"
    assert board["benchmarks"] == [mt, win]
    scores = {m["model"]: m["scores"] for m in board["models"]}
    assert scores["model-x1"] == {mt: 9.0, win: 100.0}
    assert scores["model-y2"] == {mt: 6.0, win: 100.0}
    assert scores["model-z3"] == {mt: 2.0, win: None}
    # the human board: the six counted human votes only, no judge battle
    human = (await client.get("/api/v1/leaderboard")).json()
    assert human["total_votes"] == 6 and "board" not in human
    judge_votes = await client.app.state.store.fetchone("SELECT COUNT(*) FROM votes WHERE mode = 'judge'")
    assert judge_votes[0] == 6
    # the judge read "Assistant A/B", never a model's id, name or organization
    texts = [m.content for r in client.app.state.models.get("judge").engine.requests for m in r.messages]
    assert texts and all("Assistant" in t for t in texts)
    for model, (name, _) in MODELS.items():
        assert not any(s in t for t in texts for s in (model, name, f"Org {name}"))


async def test_the_correlation_compares_with_the_human_board(client: Client) -> None:
    """Voters who prefer the worse answers: the judge's board (x1 > y2 > z3) is the human board reversed."""
    pairs = [("model-z3", "model-x1"), ("model-z3", "model-y2"), ("model-y2", "model-x1")]
    reversed_votes = [
        (f"r{i}-{k}", a, b, "Explain tides.", "model_a", "anony") for i in range(3) for k, (a, b) in enumerate(pairs)
    ]
    await seed(client.app.state.store, reversed_votes)
    client.app.state.models.get("judge").engine = ReadingJudge(max_context=8192)
    ctx = EvalContext(client.app.state.models, client.app.state.store, client.app.state.metrics)
    await run_tournament(ctx, SUITE, PLAYERS, "judge")
    board = (await client.get("/api/v1/leaderboard", params={"board": "judge"})).json()
    assert [m["model"] for m in board["models"]] == PLAYERS
    corr = board["correlation"]
    assert corr["spearman"]["value"] == -1.0 and corr["kendall"]["value"] == -1.0


async def test_the_judge_tab_on_the_page(client: Client) -> None:
    await _evaluate(client)
    human = parse_html((await client.get("/leaderboard")).text)
    boards = human.one("nav", cls="boards").all("a")
    assert [(a.attrs["data-board"], a.attrs["aria-selected"]) for a in boards] == [
        ("human", "true"),
        ("judge:judge", "false"),
    ]
    url = boards[1].attrs["href"]
    assert url == "/leaderboard?board=judge&judge=judge"
    r = await client.get(url, headers={"hx-request": "true"})
    assert r.status_code == 200
    tab = parse_html(r.text)
    section = tab.one("section", id_="board")  # the fragment alone
    assert [tr.attrs["data-model"] for tr in section.all("tr") if "data-model" in tr.attrs] == PLAYERS
    figures = {s.attrs["data-figure"]: s.text() for s in section.all("span", cls="correlation")}
    assert figures.keys() == {"Spearman ρ", "Kendall τ-b"} and "1.00" in figures["Spearman ρ"]
    headings = [th.attrs.get("data-key") for th in section.all("th")]
    assert "MT-bench (mini)" in headings and "Win % vs model-z3 (mini)" in headings
    assert not section.all("nav", cls="tabs", role="tablist", aria_label="Category")  # no category tabs
    form = section.one("form", cls="filters")
    assert {i.attrs["name"]: i.attrs.get("value") for i in form.all("input", type="hidden")}["board"] == "judge"
    assert not form.all("input", name="include_flagged")


async def test_no_judge_no_tab_and_bad_parameters(client: Client) -> None:
    page = parse_html((await client.get("/leaderboard")).text)
    assert not page.all("nav", cls="boards")
    empty = (await client.get("/api/v1/leaderboard", params={"board": "judge"})).json()
    assert (empty["models"], empty["judges"], empty["correlation"]["models"]) == ([], [], [])
    r = await client.get("/api/v1/leaderboard", params={"board": "robots"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "board"
    r = await client.get("/api/v1/leaderboard", params={"board": "judge", "judge": "j" * 201})
    assert r.status_code == 400 and r.json()["error"]["param"] == "judge"
    with pytest.raises(Invalid):
        make_query(mode="named")  # the board reads anony (human) or judge battles, nothing else


def test_the_board_tabs_of_the_screen() -> None:
    """Built without HTTP: the human tab leaves a judge's category behind, a judge tab the human one."""
    from urllib.parse import parse_qs, urlsplit

    from app.web.leaderboard_screen import leaderboard_screen

    def query(url: str) -> dict[str, list[str]]:
        return parse_qs(urlsplit(url).query)

    board = {
        "models": [],
        "total_votes": 0,
        "updated": 0.0,
        "category": "judge:j1",
        "style_control": False,
        "benchmarks": [],
        "board": "judge",
        "judge": "j1",
        "correlation": None,
    }
    params = {"board": "judge", "judge": "j1", "category": "judge:j1", "license": "MIT"}
    screen = leaderboard_screen(board, params, ["overall"], None, judges=["j1", "j2"])
    assert [(t.label, t.selected) for t in screen.boards] == [
        ("Human votes", False),
        ("Judge: j1", True),
        ("Judge: j2", False),
    ]
    assert query(screen.boards[0].url) == {"license": ["MIT"]}
    assert query(screen.boards[2].url) == {"board": ["judge"], "judge": ["j2"], "license": ["MIT"]}
    assert screen.tabs == [] and screen.correlation is None
    human = leaderboard_screen(
        {**board, "board": "human", "category": "coding"}, {"category": "coding"}, ["coding"], None, judges=["j1"]
    )
    assert query(human.boards[0].url) == {"category": ["coding"]} and human.boards[0].selected
    assert query(human.boards[1].url) == {"board": ["judge"], "judge": ["j1"]}
    assert leaderboard_screen({**board, "board": "human"}, {}, [], None).boards == []
