"""The leaderboard service: correct under every option, sparse data read honestly, one language
code, and never blocking the event loop."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from app.cli import main as arena_cli
from app.rating.board import BoardData, fit_board, make_query
from app.rating.options import Options, VoteRows
from tests.helpers.arena import Client, asgi_stream

Z95 = 1.959963984540054
FACTOR = 400 / math.log(10)


def _votes(winners: list[str], probs: list[float], a: str = "x", b: str = "y") -> VoteRows:
    n = len(winners)
    return VoteRows([a] * n, [b] * n, winners, probs, [f"v{k}" for k in range(n)], [f"p{k}" for k in range(n)])


def test_weighted_interval_is_the_hand_computed_weighted_sandwich() -> None:
    winners = ["model_a"] * 6 + ["model_b"] * 3 + ["tie"] * 2
    probs = [0.5, 0.5, 0.1, 0.1, 0.25, 0.5, 0.1, 0.5, 0.25, 0.1, 0.5]
    fitted = fit_board(BoardData(votes=_votes(winners, probs)), make_query(options=Options(inverse_probability=True)))
    # by hand: weights 1/p scaled to mean 1; the two-model MLE and its sandwich variance
    w = 1 / np.array(probs)
    w = w / w.mean()
    y = np.array([1.0] * 6 + [0.0] * 3 + [0.5] * 2)
    p = (w * y).sum() / w.sum()
    bread = w.sum() * p * (1 - p)
    meat = (w**2 * (y - p) ** 2).sum()
    half_width = Z95 * FACTOR * math.sqrt(meat / bread**2) / 2  # theta_x is half the difference
    rows = {r.model: r for r in fitted.board.rows}
    assert rows["x"].rating - 1000 == pytest.approx(FACTOR * math.log(p / (1 - p)) / 2, abs=1e-6)
    assert rows["x"].ci_upper - rows["x"].rating == pytest.approx(half_width, rel=1e-6)
    assert rows["x"].votes == 11 and fitted.votes_used == 11  # votes, never a sum of weights


def test_vote_counts_are_votes_used_not_weights() -> None:
    rows = VoteRows(
        ["x", "x", "y", "y", "x", "x"],
        ["y", "z", "z", "z", "y", "z"],
        ["model_a", "model_b", "tie", "model_a", "model_b", "model_a"],
        [0.5, 0.05, 0.2, 0.2, 0.5, 0.05],
        ["v"] * 6,
        ["p"] * 6,
    )
    fitted = fit_board(BoardData(votes=rows), make_query(options=Options(inverse_probability=True)))
    assert {r.model: r.votes for r in fitted.board.rows} == {"x": 4, "y": 4, "z": 4}


def test_style_control_applies_the_prompt_cap() -> None:
    rng = np.random.default_rng(0)
    n = 120
    a = ["x", "y", "z"] * (n // 3)
    b = ["y", "z", "x"] * (n // 3)
    winners = list(rng.choice(["model_a", "model_b", "tie"], n))
    prompts = [f"p{k % 7}" for k in range(n)]  # 7 prompts, each asked many times
    feats_a = [tuple(int(v) for v in rng.integers(0, 50, 4)) for _ in range(n)]
    feats_b = [tuple(int(v) for v in rng.integers(0, 50, 4)) for _ in range(n)]
    votes = VoteRows(a, b, winners, [1.0] * n, ["v"] * n, prompts, feats_a, feats_b)
    capped = fit_board(BoardData(votes=votes), make_query(style_control=True, options=Options(max_per_prompt=3)))
    whole = fit_board(BoardData(votes=votes), make_query(style_control=True))
    assert capped.votes_used == capped.options["votes_used"] == 21
    assert sum(r.votes for r in capped.board.rows) == 2 * 21  # the style fit saw only the kept votes
    assert capped.board.coefficients != whole.board.coefficients
    assert capped.plain is not None and sum(r.votes for r in capped.plain.rows) == 2 * 21


async def _vote(client: Client, prompt: str, winner: str = "model_a") -> None:
    battle = (await client.post("/api/v1/battles", json={"prompt": prompt, "wait": True})).json()
    r = await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"winner": winner})
    assert r.status_code == 200, r.text


async def test_one_vote_gives_both_models_rank_one(arena) -> None:
    async with arena() as c:
        await _vote(c, "Which is better?")
        board = (await c.get("/api/v1/leaderboard")).json()
        assert [m["rank_ub"] for m in board["models"]] == [1, 1]
        assert all(m["provisional"] for m in board["models"])
        assert board["fit"]["prior"] and board["notice"]
        gap = board["models"][0]["rating"] - board["models"][1]["rating"]
        assert 0 < gap < board["models"][0]["ci_plus"]  # the gap is well inside the interval
        boot = (await c.get("/api/v1/leaderboard?ci=bootstrap&rounds=50")).json()
        assert [m["rank_ub"] for m in boot["models"]] == [1, 1]


async def test_english_import_and_live_good_morning_share_a_category(arena, tmp_path: Path) -> None:
    rows = tmp_path / "b.jsonl"
    rows.write_text('{"model_a": "alpha", "model_b": "beta", "winner": "model_b", "language": "English"}\n')
    async with arena(vote_rate="1000/1", battle_rate="1000/1") as c:
        assert arena_cli(["battles", "import", str(rows), "--db", str(c.app.state.settings.db)]) == 0
        await _vote(c, "Good morning")
        conn = sqlite3.connect(c.app.state.settings.db)
        languages = {r[0] for r in conn.execute("SELECT category FROM pair_counts WHERE category LIKE 'language:%'")}
        conn.close()
        assert languages == {"language:en"}
        board = (await c.get("/api/v1/leaderboard?category=language:en")).json()
        assert board["total_votes"] == 2


async def test_bad_parameters_are_refused(arena) -> None:
    async with arena() as c:
        await _vote(c, "hi")
        for bad in ("rounds=1001", "rounds=0", "anchor=nobody=1000", "ci=exact", "rounds=many"):
            r = await c.get("/api/v1/leaderboard?" + bad)
            assert r.status_code == 400, bad
        assert (await c.get("/api/v1/leaderboard?anchor=alpha=1200")).status_code == 200


async def test_cache_is_bounded_and_concurrent_requests_share_one_fit(arena, monkeypatch) -> None:
    import app.arena.leaderboard as service_module

    calls = []
    real = service_module.fit_board

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(service_module, "fit_board", counting)
    async with arena() as c:
        await _vote(c, "hi")
        service = c.app.state.leaderboard
        service.cache_size = 3
        await asyncio.gather(*(c.get("/api/v1/leaderboard?rounds=7") for _ in range(5)))
        assert len(calls) == 1
        for rounds in range(10, 16):
            await c.get(f"/api/v1/leaderboard?rounds={rounds}")
        assert len([k for k in service._cache if k[0] == "board"]) <= 3


def _seed_pair_counts(db: Path, n_models: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 1, n_models)
    rows = []
    for i in range(n_models):
        for j in range(i + 1, n_models):
            p = 1 / (1 + math.exp(strength[j] - strength[i]))
            n = int(rng.integers(20, 60))
            wins = int(rng.binomial(n, p))
            rows.append(("anony", "overall", f"m{i:03d}", f"m{j:03d}", wins, n - wins, 1, 0))
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO pair_counts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


async def test_token_stream_keeps_flowing_during_ten_bootstraps(arena) -> None:
    reply = " ".join(f"w{k}" for k in range(600))
    async with arena({"alpha": [reply], "beta": [reply]}, vote_rate="1000/1", battle_rate="1000/1") as c:
        _seed_pair_counts(Path(c.app.state.settings.db), 80)
        for model in ("alpha", "beta"):
            c.app.state.models.get(model).engine.delay = 0.01  # a fixed pace: one word per 10 ms per side
        battle = (await c.post("/api/v1/battles", json={"prompt": "Tell me a story", "wait": False})).json()
        arrivals: list[float] = []
        window: list[float] = []

        async def read() -> None:
            async for _ in asgi_stream(c.app, f"/api/v1/battles/{battle['id']}/events"):
                arrivals.append(time.perf_counter())

        async def boards() -> None:
            await asyncio.sleep(0.3)
            window.append(time.perf_counter())
            # ten different queries: ten bootstrap fits, none shared
            await asyncio.gather(*(c.get(f"/api/v1/leaderboard?ci=bootstrap&rounds={100 + k}") for k in range(10)))
            window.append(time.perf_counter())

        await asyncio.gather(read(), boards())
        during = np.array([t for t in arrivals if window[0] <= t <= window[1]])
        assert during.size >= 20, "the stream must overlap the leaderboard requests"
        gaps = np.diff(during)
        assert np.percentile(gaps, 99) <= 0.050, f"p99 gap {np.percentile(gaps, 99) * 1e3:.0f} ms"


def test_migration_rewrites_language_names_to_codes(tmp_path: Path) -> None:
    from sqlite_utils import Database

    from app.store.migrations import migrations

    db = Database(tmp_path / "old.db")
    migrations.apply(db, stop_before="m006_language_codes")
    db.execute(
        "INSERT INTO votes (battle_id, mode, model_a, model_b, winner, categories) VALUES"
        " ('b1', 'anony', 'x', 'y', 'model_a', 'overall language:english no_ties'),"
        " ('b2', 'anony', 'x', 'y', 'tie', 'overall language:en'),"
        " ('b3', 'anony', 'x', 'y', 'tie', 'overall language:unknown')"
    )
    db.execute(
        "INSERT INTO pair_counts VALUES ('anony', 'language:english', 'x', 'y', 1, 0, 0, 0),"
        " ('anony', 'language:en', 'x', 'y', 0, 0, 1, 0), ('anony', 'language:unknown', 'x', 'y', 0, 0, 1, 0)"
    )
    db.conn.commit()
    migrations.apply(db)
    categories = [r[0] for r in db.execute("SELECT categories FROM votes ORDER BY battle_id")]
    assert categories == ["overall language:en no_ties", "overall language:en", "overall"]
    counts = db.execute("SELECT category, wins_a, ties FROM pair_counts").fetchall()
    assert counts == [("language:en", 1, 1)]


async def test_page_marks_provisional_models(arena) -> None:
    from tests.helpers.arena import parse_html

    async with arena() as c:
        await _vote(c, "Which is better?")
        tree = parse_html((await c.get("/leaderboard")).text)
        rows = tree.all("tr", cls="provisional")
        assert sorted(r.attrs["data-model"] for r in rows) == ["alpha", "beta"]
        assert tree.all("abbr", cls="provisional")


def test_long_prompt_uses_the_stored_token_count(tmp_path: Path) -> None:
    from app.rating.categories import battle_categories

    assert "long_prompt" in battle_categories("short", 1, "tie", 600, language="en")
    assert "long_prompt" not in battle_categories("x" * 2400, 1, "tie", 120, language="en")  # 2400 chars, 120 tokens
    rows = tmp_path / "b.jsonl"
    rows.write_text(
        '{"model_a": "x", "model_b": "y", "winner": "tie", "language": "English",'
        ' "conv_metadata": {"sum_user_tokens": 700}}\n'
    )
    db = tmp_path / "a.db"
    assert arena_cli(["battles", "import", str(rows), "--db", str(db)]) == 0
    conn = sqlite3.connect(db)
    (categories,) = conn.execute("SELECT categories FROM votes").fetchone()
    conn.close()
    assert categories.split() == ["overall", "language:en", "long_prompt"]
