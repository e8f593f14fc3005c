"""Single 1-10 grading (reference answers for math, reasoning and coding) and tournaments with a
Bradley-Terry table, end to end over rule engines."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.eval.results import single_scores, single_scores_from
from app.eval.runs import run_single, run_tournament
from app.eval.templates import load_template
from tests.eval.helpers import RuleEngine, answers_with, eval_context, judge_rule, prompts, suite

GRADED = suite(
    '{"id": "m1", "category": "math", "turns": ["What is 6 x 7?"], "reference": "42"}',
    '{"id": "w1", "category": "writing", "turns": ["Write a line."], "reference": "unused for writing"}',
    '{"id": "c1", "category": "coding", "turns": ["Print hi.", "Now twice."], "reference": ["print(1)", "print(2)"]}',
    '{"id": "g1", "category": "stem", "turns": ["Please garble."]}',
)


async def test_single_grades_with_references_and_counts_parse_failures(tmp_path: Path) -> None:
    judge = RuleEngine(judge_rule)
    engines = {"alpha": RuleEngine(answers_with("GOOD GOOD")), "beta": RuleEngine(answers_with("meh")), "judge": judge}
    db = tmp_path / "a.db"
    async with eval_context(db, engines) as ctx:
        result = await run_single(ctx, GRADED, ["alpha", "beta"], "judge")
        assert await single_scores_from(ctx.store, "judge", "t") == {"alpha": 10.0, "beta": 2.0}
    # m1, w1 and both turns of c1 graded; g1's reply has no grade (counted, not guessed)
    assert result.scores["alpha"] == {"mean": 10.0, "ci": [10.0, 10.0], "n": 4, "parse_failures": 1}
    assert result.scores["beta"]["mean"] == 2.0 and result.tally.parse_failures == 2
    assert len(judge.prompts) == 2 * 5
    with_reference = [p for p in judge.prompts if "Reference" in p]
    assert len(with_reference) == 6  # math, and each turn of coding, two models each; not writing, not stem
    assert all(("42" in p) != ("print(1)" in p) for p in with_reference)
    second = [p for p in with_reference if "Now twice." in p]
    first = [p for p in with_reference if "print(1)" in p and "Now twice." not in p]
    assert len(second) == len(first) == 2
    assert all("print(2)" in p for p in second) and not any("print(2)" in p for p in first)  # references up to the turn
    conn = sqlite3.connect(db)
    try:
        hashes = {r[0] for r in conn.execute("SELECT template_hash FROM eval_verdicts")}
        assert hashes == {load_template("single").sha256, load_template("single_ref").sha256}
        assert single_scores(conn, "judge", "t") == {"alpha": 10.0, "beta": 2.0}
        assert conn.execute("SELECT COUNT(*) FROM battles").fetchone()[0] == 0  # grades are not battles
        ids = sorted(r[0] for r in conn.execute("SELECT prompt_id FROM eval_verdicts WHERE model_a = 'alpha'"))
        assert ids == ["c1", "c1#2", "g1", "m1", "w1"]
    finally:
        conn.close()


async def test_tournament_plays_every_pair_and_fits_bradley_terry(tmp_path: Path) -> None:
    engines = {
        "alpha": RuleEngine(answers_with("GOOD GOOD GOOD")),
        "gamma": RuleEngine(answers_with("GOOD")),
        "beta": RuleEngine(answers_with("plain")),
        "judge": RuleEngine(judge_rule),
    }
    ticks: list[int] = []
    db = tmp_path / "a.db"
    async with eval_context(db, engines) as ctx:
        result = await run_tournament(
            ctx, prompts(5), ["beta", "alpha", "gamma"], "judge", lambda d, t: ticks.append(t)
        )
    assert len(engines["judge"].prompts) == 3 * 5 * 2
    assert ticks[-1] == 5 * (3 + 2 * 3)
    assert (result.tally.pairs, result.tally.ties) == (15, 0)
    board = result.board
    assert [r["model"] for r in board] == ["alpha", "gamma", "beta"]
    assert all(r["votes"] == 10 for r in board)
    assert all(r["ci_lower"] < r["rating"] < r["ci_upper"] for r in board)
    conn = sqlite3.connect(db)
    try:
        pairs = conn.execute(
            "SELECT model_a, model_b, wins_a, wins_b FROM pair_counts WHERE category = 'overall'"
        ).fetchall()
        assert sorted(pairs) == [("alpha", "beta", 5, 0), ("alpha", "gamma", 5, 0), ("beta", "gamma", 0, 5)]
        assert {r[0] for r in conn.execute("SELECT DISTINCT mode FROM votes")} == {"judge"}
    finally:
        conn.close()
