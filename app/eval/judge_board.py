"""The judge tab's benchmark columns: a judge's MT-bench-style score and its win rate against the
baseline, per model, read from the stored eval results and put in a board's ``benchmarks``/``scores``
(the human board's imported scores are not shown there)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.eval.results import baseline_win_rates_from, single_scores_from
from app.store.db import Store

SUITES_SQL = "SELECT DISTINCT suite FROM eval_verdicts WHERE judge = ? AND kind = 'single' ORDER BY suite"
BASELINES_SQL = (
    "SELECT DISTINCT suite, baseline FROM eval_runs WHERE judge = ? AND kind = 'pairwise' AND baseline != ''"
    " ORDER BY suite, baseline"
)


def mt_bench_column(suite: str) -> str:
    return f"MT-bench ({suite})"


def win_rate_column(baseline: str, suite: str) -> str:
    return f"Win % vs {baseline} ({suite})"


async def judge_columns(store: Store, judge: str) -> dict[str, dict[str, float]]:
    """Column -> {model: value} from ``judge``'s stored results: per suite it graded, the mean 1-10
    grade; per pairwise run's suite and baseline, each model's win rate against it (in %, ties half)."""
    columns: dict[str, dict[str, float]] = {}
    for (suite,) in await store.fetchall(SUITES_SQL, (judge,)):
        scores = await single_scores_from(store, judge, suite)
        if scores:
            columns[mt_bench_column(suite)] = scores
    for suite, baseline in await store.fetchall(BASELINES_SQL, (judge,)):
        rates = await baseline_win_rates_from(store, judge, suite, baseline)
        if rates:
            columns[win_rate_column(baseline, suite)] = {m: round(100 * r, 1) for m, r in rates.items()}
    return columns


def with_columns(board: dict[str, Any], columns: Mapping[str, Mapping[str, float]]) -> None:
    """Make ``columns`` the board's benchmark columns (in place), in place of the human board's scores."""
    board["benchmarks"] = list(columns)
    for row in board["models"]:
        row["scores"] = {c: values.get(row["model"]) for c, values in columns.items()}
