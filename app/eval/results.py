"""Figures read back from the stored verdicts, for the leaderboard's judge tab and the CLI.

Each has a sync form over a ``sqlite3.Connection`` and an async one over the app's ``Store``;
both run the same SQL and the same pure function. Judge battles are votes with mode ``judge``,
voter ``judge:<id>`` and the category ``suite:<name>``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from app.eval.runs import bt_board, mean_ci, win_rates
from app.eval.store import MODE, voter
from app.store.db import Store

SCORES_SQL = (
    "SELECT model_a AS model, score FROM eval_verdicts WHERE kind = 'single' AND judge = ? AND suite = ?"
    " AND score IS NOT NULL"
)
BASELINE_SQL = (
    "SELECT baseline FROM eval_runs WHERE kind = 'pairwise' AND judge = ? AND suite = ? AND baseline != ''"
    " ORDER BY updated DESC LIMIT 1"
)
JUDGE_VOTES_SQL = (
    "SELECT model_a, model_b, winner FROM votes WHERE mode = ? AND voter_hash = ?"
    " AND (' ' || categories || ' ') LIKE ? ESCAPE '\\'"
)


def _scores(rows: Sequence[Any]) -> dict[str, float]:
    grades: dict[str, list[float]] = {}
    for row in rows:
        grades.setdefault(row[0], []).append(float(row[1]))
    return {model: round(mean_ci(values)[0], 3) for model, values in sorted(grades.items())}


def _outcomes(rows: Sequence[Any]) -> list[tuple[str, str, str]]:
    return [(r[0], r[1], "tie" if r[2] == "tie (bothbad)" else r[2]) for r in rows]


def _vote_params(judge: str, suite: str | None) -> tuple[str, str, str]:
    # a suite name may hold "_", a LIKE wildcard: escaped, so "a_b" does not match "suite:axb"
    escaped = suite.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") if suite else ""
    return (MODE, voter(judge), f"% suite:{escaped} %" if suite else "% overall %")


def _baseline(outcomes: Sequence[tuple[str, str, str]]) -> str:
    """The model in the most battles: in a run against a baseline, the baseline is in all of them."""
    seen: dict[str, int] = {}
    for x, y, _ in outcomes:
        seen[x] = seen.get(x, 0) + 1
        seen[y] = seen.get(y, 0) + 1
    return max(sorted(seen), key=lambda m: seen[m]) if seen else ""


def _rates(outcomes: list[tuple[str, str, str]], baseline: str | None, last: Sequence[Any]) -> dict[str, float]:
    base = baseline or (last[0][0] if last else _baseline(outcomes))
    return {model: row["win_rate"] for model, row in sorted(win_rates(outcomes, base).items())}


# -- sync (CLI, scripts) ----------------------------------------------------------------------


def single_scores(conn: sqlite3.Connection, judge: str, suite: str) -> dict[str, float]:
    """MT-bench-style score per model: the mean of its parsed 1-10 grades by ``judge`` on ``suite``."""
    return _scores(conn.execute(SCORES_SQL, (judge, suite)).fetchall())


def baseline_win_rates(
    conn: sqlite3.Connection, judge: str, suite: str, baseline: str | None = None
) -> dict[str, float]:
    """Each model's win rate against ``baseline`` (default: the baseline of the latest pairwise run,
    else the model in the most judge battles), ties counting half, from ``judge``'s battles on ``suite``."""
    outcomes = _outcomes(conn.execute(JUDGE_VOTES_SQL, _vote_params(judge, suite)).fetchall())
    return _rates(outcomes, baseline, conn.execute(BASELINE_SQL, (judge, suite)).fetchall())


def judge_board(conn: sqlite3.Connection, judge: str, suite: str | None = None) -> list[dict[str, Any]]:
    """The judge's Bradley-Terry board (rating, 95% CI, rank, votes) over all its battles, or one suite's."""
    return bt_board(_outcomes(conn.execute(JUDGE_VOTES_SQL, _vote_params(judge, suite)).fetchall()))


def judges(conn: sqlite3.Connection) -> list[str]:
    """Judges with stored verdicts."""
    return [r[0] for r in conn.execute("SELECT DISTINCT judge FROM eval_verdicts ORDER BY judge").fetchall()]


# -- async (the app) --------------------------------------------------------------------------


async def single_scores_from(store: Store, judge: str, suite: str) -> dict[str, float]:
    return _scores(await store.fetchall(SCORES_SQL, (judge, suite)))


async def baseline_win_rates_from(
    store: Store, judge: str, suite: str, baseline: str | None = None
) -> dict[str, float]:
    outcomes = _outcomes(await store.fetchall(JUDGE_VOTES_SQL, _vote_params(judge, suite)))
    return _rates(outcomes, baseline, await store.fetchall(BASELINE_SQL, (judge, suite)))


async def judge_board_from(store: Store, judge: str, suite: str | None = None) -> list[dict[str, Any]]:
    return bt_board(_outcomes(await store.fetchall(JUDGE_VOTES_SQL, _vote_params(judge, suite))))


async def judges_from(store: Store) -> list[str]:
    return [r[0] for r in await store.fetchall("SELECT DISTINCT judge FROM eval_verdicts ORDER BY judge")]


LATEST_RUN_SQL = (
    "SELECT suite, baseline FROM eval_runs WHERE kind = ? AND judge = ? AND status = 'done'"
    " ORDER BY updated DESC LIMIT 1"
)


async def judge_summary(store: Store, judge: str) -> dict[str, Any]:
    """The judge tab's benchmark columns: MT-bench-style scores from ``judge``'s latest finished
    single run, and win rates against the baseline of its latest finished pairwise run."""
    out: dict[str, Any] = {"single_suite": "", "mt_bench": {}, "pairwise_suite": "", "baseline": "", "win_rates": {}}
    single = await store.fetchone(LATEST_RUN_SQL, ("single", judge))
    if single is not None:
        out["single_suite"] = single["suite"]
        out["mt_bench"] = await single_scores_from(store, judge, single["suite"])
    pairwise = await store.fetchone(LATEST_RUN_SQL, ("pairwise", judge))
    if pairwise is not None:
        out["pairwise_suite"], out["baseline"] = pairwise["suite"], pairwise["baseline"]
        out["win_rates"] = await baseline_win_rates_from(store, judge, pairwise["suite"], pairwise["baseline"])
    return out
