"""A judge's board for the leaderboard's judge tab (and ``/api/v1/leaderboard?board=judge``).

The board is Bradley–Terry over the judge's battles (mode ``judge``, category ``judge:<model id>``),
fitted by the leaderboard service like the human board. Beside it: its rank correlation with the
human board (overall), over the models both rate, with bootstrap intervals; and the benchmark
columns, a judge's MT-bench-style score and win rate against the baseline per model, read from the
stored eval results (the human board's imported scores are not shown there)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.arena.leaderboard import Service, load_categories
from app.eval.agreement import rank_agreement, rank_json
from app.eval.results import baseline_win_rates_from, single_scores_from
from app.rating.board import make_query
from app.store.db import Store

JUDGE_PREFIX = "judge:"  # a judge's battles are counted in mode "judge", category "judge:<model id>"
CORRELATION_ROUNDS = 100  # bootstrap refits per board for the correlation's interval

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


async def judge_ids(store: Store) -> list[str]:
    """The judges with battles stored, by model id."""
    categories = await load_categories(store, mode="judge")
    return sorted(c.removeprefix(JUDGE_PREFIX) for c in categories if c.startswith(JUDGE_PREFIX))


async def judge_board_json(
    service: Service, store: Store, metadata: Mapping[str, Mapping[str, Any]], judge: str, ci: str = "sandwich"
) -> dict[str, Any]:
    """The leaderboard JSON of ``judge``'s board (the first judge when ``judge`` is ""), with
    ``board``, ``judge``, ``judges`` and ``correlation`` added and the judge's benchmark columns."""
    judges = await judge_ids(store)
    judge = judge or (judges[0] if judges else "")
    category = JUDGE_PREFIX + judge
    out = await service.board(metadata, make_query(category=category, mode="judge", ci=ci, provisional_votes=0))
    human, own = await service.counts("overall"), await service.counts(category, "judge")
    ranks = await service.in_worker(lambda: rank_agreement(human.cells(), own.cells(), rounds=CORRELATION_ROUNDS))
    out.update(board="judge", judge=judge, judges=judges, correlation=rank_json(ranks))
    with_columns(out, await judge_columns(store, judge))
    return out
