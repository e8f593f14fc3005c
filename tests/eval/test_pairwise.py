"""Pairwise against a baseline, end to end over rule engines: both orders, ties from orders that
disagree, parse failures counted (never guessed), storage under mode judge, and the cache."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from app.arena.leaderboard import COUNTS_SQL
from app.eval.results import baseline_win_rates, judge_board, judge_summary
from app.eval.runs import run_pairwise, run_single
from app.eval.templates import load_template
from tests.eval.helpers import RuleEngine, answers_with, eval_context, judge_rule, suite

SUITE = suite(
    '{"id": "p1", "turns": ["Name a prime number."]}',
    '{"question_id": 2, "category": "writing", "turns": ["Write a line.", "Another one."]}',
    '{"id": "p3", "prompt": "Be biased here."}',
    '{"id": "p4", "prompt": "Please garble this."}',
)


def engines() -> dict[str, RuleEngine]:
    return {
        "alpha": RuleEngine(answers_with("GOOD GOOD answer")),
        "beta": RuleEngine(answers_with("plain answer")),
        "judge": RuleEngine(judge_rule),
    }


def db_rows(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def test_pairwise_judges_both_orders_and_counts_ties_and_parse_failures(tmp_path: Path) -> None:
    eng = engines()
    seen: list[tuple[int, int]] = []
    async with eval_context(tmp_path / "a.db", eng) as ctx:
        result = await run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta", lambda d, t: seen.append((d, t)))
    t = result.tally
    # p1 and turn-2 prompt 2: alpha wins both orders; p3: the judge always says A (a tie); p4: no verdict.
    assert (t.pairs, t.ties, t.inconsistent, t.parse_failures) == (3, 1, 1, 2)
    assert result.win_rates["alpha"] | {"ci": None} == {
        "wins": 2,
        "ties": 1,
        "losses": 0,
        "n": 3,
        "win_rate": round(2.5 / 3, 4),
        "ci": None,
    }
    assert seen[-1] == (16, 16) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    judge = eng["judge"]
    assert len(judge.prompts) == 8  # 4 prompts x 2 orders
    for prompt in judge.prompts:  # never a model's name; always Assistant A and B
        assert "alpha" not in prompt and "beta" not in prompt and "Assistant A" in prompt and "Assistant B" in prompt
    p1 = [p for p in judge.prompts if "Name a prime" in p]
    a_first = [p.index("GOOD GOOD") < p.index("plain answer") for p in p1]
    assert sorted(a_first) == [False, True]  # alpha shown first once, second once
    assert all(r.temperature == 0.0 and r.priority < 0 for r in judge.requests)


async def test_pairwise_storage_is_its_own_mode(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    async with eval_context(db, engines()) as ctx:
        await run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta")
    battles = db_rows(db, "SELECT * FROM battles")
    assert len(battles) == 3 and {b["mode"] for b in battles} == {"judge"}
    assert {b["voter_hash"] for b in battles} == {"judge:judge"} and {b["status"] for b in battles} == {"voted"}
    assert {b["first_prompt"] for b in battles} == {"Name a prime number.", "Write a line.", "Be biased here."}
    two_turns = next(b for b in battles if b["first_prompt"] == "Write a line.")
    assert two_turns["turns"] == 2 and json.loads(two_turns["meta"])["question_id"] == "2"
    messages = db_rows(
        db, "SELECT side, turn, content FROM messages WHERE battle_id = ? ORDER BY turn, side", (two_turns["id"],)
    )
    assert [(m["side"], m["turn"]) for m in messages] == [("", 1), ("a", 1), ("b", 1), ("", 2), ("a", 2), ("b", 2)]
    votes = db_rows(db, "SELECT * FROM votes")
    assert sorted(v["winner"] for v in votes) == ["model_a", "model_a", "tie"]
    assert {v["categories"] for v in votes} == {"overall judge:judge suite:t"} and {v["mode"] for v in votes} == {
        "judge"
    }
    assert {r["mode"] for r in db_rows(db, "SELECT mode FROM pair_counts")} == {"judge"}
    assert db_rows(db, COUNTS_SQL, ("anony", "overall")) == []  # the human board sees nothing
    verdicts = db_rows(db, "SELECT * FROM eval_verdicts")
    assert len(verdicts) == 8 and {v["template_hash"] for v in verdicts} == {load_template("pairwise").sha256}
    assert sum(v["verdict"] == "" for v in verdicts) == 2 and all(v["raw"] for v in verdicts)
    conn = sqlite3.connect(db)
    try:
        assert baseline_win_rates(conn, "judge", "t") == {"alpha": round(2.5 / 3, 4)}
        assert [r["model"] for r in judge_board(conn, "judge", "t")] == ["alpha", "beta"]
    finally:
        conn.close()
    run = db_rows(db, "SELECT * FROM eval_runs")[0]
    assert (run["status"], run["done"], run["total"], run["kind"]) == ("done", 16, 16, "pairwise")
    assert json.loads(run["result"])["tally"]["parse_failures"] == 2


async def test_a_second_run_reuses_answers_and_verdicts(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    async with eval_context(db, engines()) as ctx:
        first = await run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta")
    again = engines()
    async with eval_context(db, again) as ctx:
        second = await run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta")
    assert all(e.requests == [] for e in again.values())
    assert second.tally.summary() | {
        "answers_cached": 0,
        "verdicts_cached": 0,
        "judge_replies": 0,
    } == first.tally.summary() | {"answers_cached": 0, "verdicts_cached": 0, "judge_replies": 0}
    assert (second.tally.answers_cached, second.tally.verdicts_cached) == (8, 8)
    assert second.win_rates == first.win_rates
    assert len(db_rows(db, "SELECT id FROM battles")) == 3 and len(db_rows(db, "SELECT id FROM votes")) == 3


async def test_an_edited_template_is_a_new_verdict(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    async with eval_context(db, engines()) as ctx:
        await run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta")
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "pairwise.txt").write_text(load_template("pairwise").text + "\nBe strict.\n")
    again = engines()
    async with eval_context(db, again, templates=folder) as ctx:
        result = await run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta")
    assert len(again["judge"].prompts) == 8 and all("Be strict." in p for p in again["judge"].prompts)
    assert again["alpha"].requests == []  # the answers are the same
    assert result.tally.verdicts_cached == 0
    assert len({r["template_hash"] for r in db_rows(db, "SELECT template_hash FROM eval_verdicts")}) == 2


async def test_judge_summary_reads_the_latest_runs(tmp_path: Path) -> None:
    async with eval_context(tmp_path / "a.db", engines()) as ctx:
        assert (await judge_summary(ctx.store, "judge"))["win_rates"] == {}
        await run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta")
        await run_single(ctx, SUITE, ["alpha", "beta"], "judge")
        summary = await judge_summary(ctx.store, "judge")
    assert summary == {
        "single_suite": "t",
        "mt_bench": {"alpha": 10.0, "beta": 2.0},
        "pairwise_suite": "t",
        "baseline": "beta",
        "win_rates": {"alpha": round(2.5 / 3, 4)},
    }


async def test_a_cancelled_run_is_marked_interrupted(tmp_path: Path) -> None:
    eng = engines()
    eng["judge"] = RuleEngine(judge_rule, delay=0.05, parallel=1)
    db = tmp_path / "a.db"
    async with eval_context(db, eng) as ctx:
        task = asyncio.create_task(run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta", run_id="job-1"))
        while not eng["judge"].requests:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        early = asyncio.create_task(run_pairwise(ctx, SUITE, ["alpha"], "judge", "beta", run_id="job-2"))
        await asyncio.sleep(0)
        early.cancel()  # before its row is even written
        with pytest.raises(asyncio.CancelledError):
            await early
    states = {r["id"]: r["status"] for r in db_rows(db, "SELECT id, status FROM eval_runs")}
    assert states["job-1"] == "interrupted" and states.get("job-2", "interrupted") == "interrupted"


async def test_a_suite_name_with_an_underscore_matches_only_itself(tmp_path: Path) -> None:
    async with eval_context(tmp_path / "a.db", engines()) as ctx:
        await run_pairwise(ctx, dataclasses.replace(SUITE, name="axb"), ["alpha"], "judge", "beta")
    conn = sqlite3.connect(tmp_path / "a.db")
    try:
        assert judge_board(conn, "judge", "a_b") == []  # "_" is no LIKE wildcard here
        assert [r["model"] for r in judge_board(conn, "judge", "axb")] == ["alpha", "beta"]
    finally:
        conn.close()
