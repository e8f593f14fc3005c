"""The leaderboard as served: API shape, freshness, categories, import/export, scores, CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from app.cli import main as arena

ROOT = Path(__file__).resolve().parent.parent


def _battles(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    strength = {"m-strong": 2.0, "m-mid": 1.0, "m-weak": 0.0, "m-code": 1.2}
    rows = []
    for i in range(n):
        a, b = rng.sample(sorted(strength), 2)
        p = 1 / (1 + 10 ** ((strength[b] - strength[a]) / 2))
        u = rng.random()
        winner = "tie" if abs(u - p) < 0.05 else ("model_a" if u < p else "model_b")
        prompt = "Write a python function that sorts a list" if i % 3 == 0 else "Tell me a joke"
        rows.append(
            {
                "model_a": a,
                "model_b": b,
                "winner": winner,
                "anony": i % 10 != 0,
                "turn": 1 + (i % 7 == 0),
                "tstamp": 1_700_000_000 + i,
                "language": "English",
                "question_id": f"q{i}",
                "conversation_a": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": f"**A{i}**\n- item"},
                ],
                "conversation_b": [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"B{i}"}],
            }
        )
    return rows


@pytest.fixture
def battles_file(tmp_path: Path) -> Path:
    path = tmp_path / "battles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _battles(400)))
    return path


def test_import_export_round_trip_loses_nothing(battles_file: Path, tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "a.db")
    assert arena(["battles", "import", str(battles_file), "--db", db]) == 0
    assert "imported 400 battles" in capsys.readouterr().out
    out = tmp_path / "out.jsonl"
    assert arena(["battles", "export", str(out), "--db", db, "--all"]) == 0
    original = {r["question_id"]: r for r in map(json.loads, battles_file.read_text().splitlines())}
    exported = {r["question_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert exported == original
    anony = tmp_path / "anony.json"
    assert arena(["battles", "export", str(anony), "--db", db]) == 0
    assert len(json.loads(anony.read_text())) == sum(1 for r in original.values() if r["anony"])
    # importing the same file again adds nothing
    assert arena(["battles", "import", str(battles_file), "--db", db]) == 0
    assert "imported 0 battles, skipped 400 already present" in capsys.readouterr().out


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path, capsys) -> None:
    path = tmp_path / "b.jsonl"
    good = {"model_a": "x", "model_b": "y", "winner": "model_a"}
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                json.dumps({**good, "winner": "A"}),
                json.dumps({**good, "model_b": "x"}),
                json.dumps({"model_a": "x", "winner": "tie"}),
                "{not json",
            ]
        )
    )
    assert arena(["battles", "import", str(path), "--db", str(tmp_path / "a.db")]) == 0
    out = capsys.readouterr().out
    assert "imported 1 battles" in out
    assert "line 2: unknown winner 'A'" in out and "line 3: a model against itself" in out
    assert "line 4: missing field 'model_b'" in out and "line 5: not valid JSON" in out
    empty = tmp_path / "e.json"
    empty.write_text(json.dumps([{"model_a": "x"}]))
    assert arena(["battles", "import", str(empty), "--db", str(tmp_path / "a.db")]) == 1
    assert "no valid battle rows" in capsys.readouterr().err


async def test_api_shape_freshness_and_categories(make_app, battles_file: Path, tmp_path: Path) -> None:
    app = make_app(vote_rate="100000/1", battle_rate="100000/1")
    db = str(app.state.settings.db)
    assert arena(["battles", "import", str(battles_file), "--db", db]) == 0
    async with AsyncTestClient(app) as c:
        board = (await c.get("/api/v1/leaderboard")).json()
        assert set(board) >= {"models", "total_votes", "updated"}
        assert set(board["models"][0]) >= {"model", "rating", "ci_lower", "ci_upper", "rank_ub", "votes"}
        assert [m["model"] for m in board["models"]][0] == "m-strong"
        assert board["total_votes"] == 360 and board["fit"]["converged"]
        ratings = [m["rating"] for m in board["models"]]
        assert ratings == sorted(ratings, reverse=True)
        assert abs(sum(ratings) / len(ratings) - 1000) < 1e-6

        coding = (await c.get("/api/v1/leaderboard?category=coding")).json()
        assert coding["category"] == "coding" and 0 < coding["total_votes"] < board["total_votes"]
        anchored = (await c.get("/api/v1/leaderboard", params={"anchor": "m-mid=1114"})).json()
        assert {m["model"]: m["rating"] for m in anchored["models"]}["m-mid"] == 1114
        style = (await c.get("/api/v1/leaderboard?style_control=true")).json()
        assert style["style_control"] and set(style["coefficients"]) == {"tokens", "headers", "list_items", "bold"}
        boot = (await c.get("/api/v1/leaderboard?ci=bootstrap")).json()
        assert boot["ci"] == "bootstrap"
        for bad in ("ci=nope", "anchor=m-mid", "anchor=m-mid=abc"):
            r = await c.get("/api/v1/leaderboard?" + bad)
            assert r.status_code == 400 and r.json()["error"]["message"]

        # a vote shows up in the next request: the cache is keyed on the vote count
        battle = (await c.post("/api/v1/battles", json={"prompt": "hi", "wait": True})).json()
        assert (await c.post(f"/api/v1/battles/{battle['id']}/vote", json={"winner": "model_a"})).status_code == 200
        after = (await c.get("/api/v1/leaderboard")).json()
        assert after["total_votes"] == board["total_votes"] + 1
        assert {"alpha", "beta"} <= {m["model"] for m in after["models"]}


async def test_benchmark_scores_become_columns(make_app, battles_file: Path, tmp_path: Path, capsys) -> None:
    app = make_app()
    db = str(app.state.settings.db)
    arena(["battles", "import", str(battles_file), "--db", db])
    scores = tmp_path / "scores.csv"
    scores.write_text("model,MMLU,MT-bench\nm-strong,80.5,8.9\nm-weak,40,\n")
    assert arena(["scores", "import", str(scores), "--db", db]) == 0
    async with AsyncTestClient(app) as c:
        board = (await c.get("/api/v1/leaderboard")).json()
        assert board["benchmarks"] == ["MMLU", "MT-bench"]
        by_model = {m["model"]: m["scores"] for m in board["models"]}
        assert by_model["m-strong"] == {"MMLU": 80.5, "MT-bench": 8.9}
        assert by_model["m-weak"] == {"MMLU": 40.0, "MT-bench": None}
        page = await c.get("/leaderboard?sort=MMLU&order=desc")
        assert page.status_code == 200 and "MMLU" in page.text


def test_cli_json_has_the_api_shape(battles_file: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "leaderboard",
            "--battles",
            str(battles_file),
            "--format",
            "json",
            "--anchor",
            "m-weak=900",
            "--ci",
            "bootstrap",
            "--bootstrap-rounds",
            "20",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    board = json.loads(run.stdout)
    assert set(board) >= {"models", "total_votes", "updated", "category"}
    assert {m["model"]: m["rating"] for m in board["models"]}["m-weak"] == 900
    db = str(tmp_path / "a.db")
    assert arena(["battles", "import", str(battles_file), "--db", db]) == 0
    from_db = subprocess.run(
        [sys.executable, "-m", "app", "leaderboard", "--db", db, "--format", "csv", "--category", "coding"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert from_db.stdout.splitlines()[0] == "rank_ub,model,rating,ci_lower,ci_upper,votes"


async def test_page_renders_table_tabs_and_plots(make_app, battles_file: Path) -> None:
    from html.parser import HTMLParser

    app = make_app()
    arena(["battles", "import", str(battles_file), "--db", str(app.state.settings.db)])

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[str] = []
            self.tabs: list[str] = []
            self.svgs = 0
            self.circles = 0

        def handle_starttag(self, tag, attrs):  # type: ignore[override]
            a = dict(attrs)
            if tag == "tr" and "data-model" in a:
                self.rows.append(a["data-model"])
            if tag == "a" and a.get("role") == "tab":
                self.tabs.append(a["data-category"])
            if tag == "svg":
                self.svgs += 1
            if tag == "circle":
                self.circles += 1

    async with AsyncTestClient(app) as c:
        page = Collect()
        page.feed((await c.get("/leaderboard")).text)
        assert page.rows[0] == "m-strong" and len(page.rows) == 4
        assert page.tabs[0] == "overall" and "coding" in page.tabs
        assert page.svgs == 3 and page.circles == 4
        swapped = Collect()
        swapped.feed((await c.get("/leaderboard?sort=model&order=asc", headers={"hx-request": "true"})).text)
        assert swapped.rows == sorted(page.rows)
        html = (await c.get("/leaderboard?category=coding", headers={"hx-request": "true"})).text
        assert html.lstrip().startswith('<section id="board">') and "<html" not in html


def test_vote_level_options_select_and_weight_votes() -> None:
    from app.rating.options import Options, VoteRows, select_votes, selected_cells

    rows = VoteRows(
        model_a=["x", "x", "x", "y", "x", "x"],
        model_b=["y", "y", "y", "x", "y", "y"],
        winner=["model_a", "model_a", "model_a", "model_b", "tie", "model_b"],
        pair_prob=[0.5, 0.5, 0.5, 0.5, 0.25, 0.25],
        voter=["v1", "v2", "v3", "v4", "v5", "v6"],
        prompt=["same", "same", "same", "same", "other", "third"],
    )
    plain = selected_cells(rows, select_votes(rows, Options()))
    assert plain.counts.tolist() == [[4.0, 1.0, 1.0]]  # y-wins-as-b flips to x
    capped = select_votes(rows, Options(max_per_prompt=2))
    assert capped.report["dropped_repeated_prompts"] == 2 and capped.used == 4
    weighted = selected_cells(rows, select_votes(rows, Options(inverse_probability=True)))
    # counts stay counts; the two rarer pairs' votes weigh double relative to the others
    assert weighted.counts.tolist() == [[4.0, 1.0, 1.0]]
    assert weighted.weights[0, 2] / weighted.weights[0, 0] == pytest.approx(4 / (4 * 2))


async def test_api_options_and_raw_ranking_beside_style_control(make_app, battles_file: Path) -> None:
    app = make_app()
    arena(["battles", "import", str(battles_file), "--db", str(app.state.settings.db)])
    async with AsyncTestClient(app) as c:
        capped = (await c.get("/api/v1/leaderboard?max_per_prompt=50&filter_voters=true")).json()
        assert capped["options"]["dropped_repeated_prompts"] > 0 and capped["options"]["votes_used"] == 100
        assert capped["total_votes"] == 100
        assert (await c.get("/api/v1/leaderboard?max_per_prompt=lots")).status_code == 400
        style = (await c.get("/api/v1/leaderboard?style_control=1")).json()
        assert all(m["raw_rank_ub"] >= 1 and m["raw_rating"] for m in style["models"])
        page = (await c.get("/leaderboard?style_control=1")).text
        assert "Rank without style control" in page
