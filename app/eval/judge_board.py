"""The judge tab's benchmark columns: a judge's MT-bench-style score and its win rate against the
baseline, per model, read from the eval results and put in a board's ``benchmarks``/``scores``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.store.db import Store

MT_BENCH = "MT-bench (judge)"


def win_rate_column(baseline: str) -> str:
    return f"Win rate vs {baseline}"


async def judge_columns(store: Store, judge: str) -> dict[str, dict[str, float]]:
    """Column -> {model: value} for ``judge``'s stored results (none yet: {})."""
    return {}


def with_columns(board: dict[str, Any], columns: Mapping[str, Mapping[str, float]]) -> None:
    """Make ``columns`` the board's benchmark columns (in place), in place of the human board's scores."""
    board["benchmarks"] = list(columns)
    for row in board["models"]:
        row["scores"] = {c: values.get(row["model"]) for c, values in columns.items()}
