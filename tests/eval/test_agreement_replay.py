"""`arena eval agreement` end to end: stored human battles replayed to a scripted judge that reads
the answers, figures checked against values worked out by hand, the cache, what is left out, and
that the judge never sees a model's id or name."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.cli import main as arena
from app.engines.scripted import ScriptedEngine
from app.eval.context import EvalContext
from app.eval.replay import figures, human_battles, replay
from app.server import create_app
from app.settings import Settings
from app.store.db import Store
from tests.eval.human_battles import MODELS, MODELS_TOML, ReadingJudge, seed
from tests.helpers.arena import serve


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(MODELS_TOML)
    return path


@pytest.fixture
async def ctx(tmp_path: Path, models_file: Path) -> AsyncIterator[EvalContext]:
    app = create_app(Settings(models=models_file, db=tmp_path / "arena.db"))
    async with serve(app) as c:
        await seed(c.app.state.store)
        entry = c.app.state.models.get("judge")
        entry.engine = ReadingJudge(max_context=8192)
        yield EvalContext(c.app.state.models, c.app.state.store, c.app.state.metrics)


async def test_human_battles_are_the_counted_anonymous_votes(ctx: EvalContext) -> None:
    battles = await human_battles(ctx.store)
    assert [b.id for b in battles] == ["b1", "b2", "b3", "b4", "b5", "b6"]
    assert (battles[1].prompts, battles[1].answers_a, battles[1].answers_b) == (
        ("Explain tides.",),
        ("Bad answer.",),
        ("Good answer.",),
    )
    drawn = [b.id for b in await human_battles(ctx.store, limit=3, seed=1)]
    assert len(drawn) == 3 and drawn == [b.id for b in await human_battles(ctx.store, limit=3, seed=1)]


async def test_a_vision_battle_is_skipped_and_counted(ctx: EvalContext) -> None:
    def attach(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO images VALUES ('abc', 'image/png', 1, 1, 3, 1.0)")
        conn.execute("INSERT INTO battle_images VALUES ('b2', 1, 0, 'abc')")

    await ctx.store.write(attach)
    battles = await human_battles(ctx.store)
    assert [b.id for b in battles if b.images] == ["b2"]
    tally = await replay(ctx, "judge", battles)
    assert (tally.battles, tally.skipped_vision, tally.judge_replies) == (5, 1, 10)
    assert [d[:2] for d in tally.decided].count(("model-z3", "model-x1")) == 0 and len(tally.decided) == 4


async def test_replay_figures_match_the_hand_computed_ones(ctx: EvalContext) -> None:
    tally = await replay(ctx, "judge", await human_battles(ctx.store))
    report = figures(tally, rounds=200, seed=0)
    assert report["tally"] == {
        "battles": 6,
        "skipped_vision": 0,
        "decided": 5,
        "cached": 0,
        "judge_replies": 12,
        "judge_failures": 0,
        "parse_failures": 2,
        "inconsistent": 1,
    }
    assert report["agreement_without_ties"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["agreement_without_ties"]["n"] == 3
    assert report["agreement_with_ties"]["value"] == pytest.approx(2 / 5, abs=1e-4)
    assert report["cohen_kappa"]["value"] == pytest.approx(1 / 6, abs=1e-4)
    kappa = report["cohen_kappa"]
    assert kappa["lower"] <= kappa["value"] <= kappa["upper"]
    # both boards rank x1 > y2 > z3
    assert report["rank_models"] == ["model-x1", "model-y2", "model-z3"]
    assert report["rank_spearman"]["value"] == pytest.approx(1.0)
    assert report["rank_kendall"]["value"] == pytest.approx(1.0)


async def test_the_judge_never_sees_a_model_name(ctx: EvalContext) -> None:
    await replay(ctx, "judge", await human_battles(ctx.store))
    engine = ctx.models.get("judge").engine
    assert isinstance(engine, ReadingJudge)
    texts = [m.content for r in engine.requests for m in r.messages]
    assert len(engine.requests) == 12
    for model, (name, _) in MODELS.items():
        for secret in (model, name, f"Org {name}"):
            assert not any(secret in t for t in texts), secret
    assert all("Assistant A" in t and "Assistant B" in t for t in texts)


async def test_a_second_replay_reads_the_cache(ctx: EvalContext) -> None:
    battles = await human_battles(ctx.store)
    first = figures(await replay(ctx, "judge", battles), rounds=50)
    engine = ctx.models.get("judge").engine
    asked = len(engine.requests)
    seen: list[tuple[int, int]] = []
    again = await replay(ctx, "judge", battles, lambda done, total: seen.append((done, total)))
    assert len(engine.requests) == asked  # nothing asked again
    assert again.cached == 12 and again.judge_replies == 0
    assert seen[-1] == (12, 12)
    assert figures(again, rounds=50)["cohen_kappa"] == first["cohen_kappa"]
    rows = await ctx.store.fetchall("SELECT DISTINCT kind, suite FROM eval_verdicts")
    assert [tuple(r) for r in rows] == [("agreement", "human")]
    # the replay writes no battle and no vote
    assert (await ctx.store.fetchone("SELECT COUNT(*) FROM votes WHERE mode != 'anony' AND mode != 'named'"))[0] == 0


async def test_a_failing_judge_is_counted_and_not_cached(ctx: EvalContext) -> None:
    entry = ctx.models.get("judge")
    entry.engine = ScriptedEngine(["[[A>B]]"], fail_after=0, max_context=8192)
    tally = await replay(ctx, "judge", (await human_battles(ctx.store))[:2])
    assert (tally.judge_failures, len(tally.decided), tally.judge_replies) == (4, 0, 0)
    assert (await ctx.store.fetchone("SELECT COUNT(*) FROM eval_verdicts"))[0] == 0


def test_cli_agreement_prints_the_figures(
    tmp_path: Path, models_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI over the models file's own scripted judge, which always answers [[A=B]]: every verdict a tie.
    Human votes b1..b6: A B tie B B A. With ties: 1 of 6 equal. Without ties: none left (no figure).
    kappa: p_o = 1/6; the judge is all tie, so p_e = P_human(tie) = 1/6 and kappa = 0."""
    import asyncio

    db = tmp_path / "cli.db"

    async def prepare() -> None:
        store = Store(db)
        await store.open()
        try:
            await seed(store)
        finally:
            await store.close()

    asyncio.run(prepare())
    args = ["eval", "agreement", "--judge", "judge", "--db", str(db), "--models-file", str(models_file)]
    assert arena([*args, "--no-progress", "--rounds", "100"]) == 0
    out = capsys.readouterr().out
    assert "judge judge: 6 of 6 human battles decided in both orders" in out
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines()}
    assert rows["agreement, with ties"][3] == "0.167"
    assert rows["agreement, ties left out"][4] == "-"
    assert rows["Cohen's kappa"][2] == "0.000"
    assert arena([*args, "--format", "json", "--limit", "2", "--seed", "3", "--rounds", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tally"]["battles"] == 2 and report["tally"]["cached"] == 4 and report["seed"] == 3
