"""The leaderboard as the app serves it: rating functions over the stored pair counts, with
model metadata and benchmark scores joined in, cached until the next vote.

The API, the page and the CLI all build their answer here, so their JSON has one shape.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.rating import (
    battle_count_matrix,
    compute_leaderboard,
    compute_style_leaderboard,
    win_rate_matrix,
)
from app.rating.leaderboard import Leaderboard
from app.rating.options import Counts, Options, VoteRows, apply_options
from app.store.db import Store

CI_KINDS = ("sandwich", "bootstrap")
DEFAULT_MIN_VOTES = {"overall": 0}
CATEGORY_MIN_VOTES = 5  # within a category, models with fewer votes are hidden


class LeaderboardError(ValueError):
    pass


def parse_anchor(text: str | None) -> tuple[str, float] | None:
    """``MODEL=SCORE`` -> (model, score)."""
    if not text:
        return None
    model, sep, score = text.rpartition("=")
    try:
        value = float(score)
    except ValueError:
        value = float("nan")
    if not sep or not model or not np.isfinite(value):
        raise LeaderboardError(f"anchor must look like MODEL=SCORE, got {text!r}")
    return model, value


@dataclass(frozen=True)
class StyleRows:
    """Per-vote rows for the style-controlled fit."""

    model_a: list[str]
    model_b: list[str]
    winner: list[str]
    features_a: list[tuple[int, ...]]
    features_b: list[tuple[int, ...]]


def _round(x: float) -> float:
    return round(float(x), 2)


def board_json(
    board: Leaderboard,
    *,
    total_votes: int,
    category: str,
    style_control: bool,
    metadata: Mapping[str, Mapping[str, Any]],
    scores: Mapping[str, Mapping[str, float]],
    updated: float,
) -> dict[str, Any]:
    """The API's response shape (also the CLI's ``--format json``)."""
    columns = sorted({c for s in scores.values() for c in s})
    models = []
    for row in board.rows:
        meta = metadata.get(row.model, {})
        models.append(
            {
                "model": row.model,
                "name": meta.get("name") or row.model,
                "rating": _round(row.rating),
                "ci_lower": _round(row.ci_lower),
                "ci_upper": _round(row.ci_upper),
                "ci_plus": _round(row.ci_upper - row.rating),
                "ci_minus": _round(row.rating - row.ci_lower),
                "rank_ub": row.rank_ub,
                "votes": row.votes,
                "organization": meta.get("organization", ""),
                "license": meta.get("license", ""),
                "parameters": meta.get("parameters", ""),
                "scores": {c: scores.get(row.model, {}).get(c) for c in columns},
            }
        )
    return {
        "models": models,
        "total_votes": total_votes,
        "updated": updated,
        "category": category,
        "style_control": style_control,
        "ci": board.ci,
        "benchmarks": columns,
        "hidden": list(board.hidden),
        "coefficients": dict(board.coefficients or {}),
        "fit": {
            "converged": bool(board.info.converged),
            "iterations": int(board.info.iterations),
            "grad_norm": float(board.info.grad_norm),
        },
    }


def compute(
    counts: Counts,
    *,
    anchor: tuple[str, float] | None = None,
    ci: str = "sandwich",
    rounds: int = 100,
    min_votes: int = 0,
    style: StyleRows | None = None,
) -> Leaderboard | None:
    """The fit for one category; None when there are no votes yet."""
    if ci not in CI_KINDS:
        raise LeaderboardError(f"ci must be one of {', '.join(CI_KINDS)}")
    if style is not None:
        if not style.winner:
            return None
        return compute_style_leaderboard(
            style.model_a,
            style.model_b,
            style.winner,
            np.array(style.features_a, dtype=float),
            np.array(style.features_b, dtype=float),
            anchor=anchor,
            min_votes=min_votes,
        )
    if counts.total == 0:
        return None
    return compute_leaderboard(counts.cells(), anchor=anchor, ci=ci, rounds=rounds, min_votes=min_votes)


def add_raw_ranking(out: dict[str, Any], plain: Leaderboard | None) -> None:
    """Put the plain (not style-controlled) score and rank beside each style-controlled row."""
    raw = {r.model: r for r in plain.rows} if plain is not None else {}
    for model in out["models"]:
        row = raw.get(model["model"])
        model["raw_rating"] = _round(row.rating) if row else None
        model["raw_rank_ub"] = row.rank_ub if row else None


def empty_json(category: str, style_control: bool, ci: str, updated: float) -> dict[str, Any]:
    return {
        "models": [],
        "total_votes": 0,
        "updated": updated,
        "category": category,
        "style_control": style_control,
        "ci": ci,
        "benchmarks": [],
        "hidden": [],
        "coefficients": {},
        "fit": None,
        "notice": None,
        "options": None,
    }


def matrices(counts: Counts, order: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Win-rate and battle-count matrices in leaderboard order."""
    cells = counts.cells()
    index = {m: i for i, m in enumerate(cells.models)}
    keep = [m for m in order if m in index]
    pick = [index[m] for m in keep]
    win = win_rate_matrix(cells)[np.ix_(pick, pick)]
    count = battle_count_matrix(cells)[np.ix_(pick, pick)]
    return keep, win, count


# -- reading the store ------------------------------------------------------------------------


_STYLE_COLUMNS = ", ".join(f"{s}_sf_{c}" for s in "ab" for c in ("tokens", "headers", "lists", "bold"))
COUNTS_SQL = "SELECT model_a, model_b, wins_a, wins_b, ties + bothbad FROM pair_counts WHERE mode = ? AND category = ?"
STYLE_SQL = (
    f"SELECT model_a, model_b, winner, {_STYLE_COLUMNS} FROM votes WHERE mode = ? AND (' ' || categories || ' ') LIKE ?"
)


def counts_from_rows(rows: Sequence[Sequence[Any]]) -> Counts:
    """Rows of :data:`COUNTS_SQL` as :class:`Counts`."""
    return Counts(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows]
    )


def style_from_rows(rows: Sequence[Sequence[Any]]) -> StyleRows:
    """Rows of :data:`STYLE_SQL` as :class:`StyleRows`."""
    return StyleRows(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [tuple(r[3:7]) for r in rows],
        [tuple(r[7:11]) for r in rows],
    )


VOTES_SQL = (
    "SELECT v.model_a, v.model_b, v.winner, v.pair_prob, v.voter_hash, b.first_prompt FROM votes v"
    " JOIN battles b ON b.id = v.battle_id WHERE v.mode = ? AND (' ' || v.categories || ' ') LIKE ?"
)


def votes_from_rows(rows: Sequence[Sequence[Any]]) -> VoteRows:
    """Rows of :data:`VOTES_SQL` as :class:`VoteRows`."""
    return VoteRows(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [float(r[3] or 1.0) for r in rows],
        [r[4] or "" for r in rows],
        [r[5] or "" for r in rows],
    )


async def load_counts(store: Store, category: str, mode: str = "anony") -> Counts:
    return counts_from_rows(await store.fetchall(COUNTS_SQL, (mode, category)))


async def load_style_rows(store: Store, category: str, mode: str = "anony") -> StyleRows:
    return style_from_rows(await store.fetchall(STYLE_SQL, (mode, f"% {category} %")))


async def load_categories(store: Store, mode: str = "anony") -> list[str]:
    rows = await store.fetchall("SELECT DISTINCT category FROM pair_counts WHERE mode = ?", (mode,))
    names = sorted(r[0] for r in rows)
    return sorted(names, key=lambda c: (c != "overall", c.startswith("language:"), c))


async def load_scores(store: Store) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in await store.fetchall("SELECT model, column, value FROM scores"):
        out.setdefault(r[0], {})[r[1]] = r[2]
    return out


@dataclass
class Service:
    """Computes boards on demand and keeps each until a vote changes the counts.

    ``version`` is bumped by every vote in this process; a short time-to-live also picks up
    changes made by other processes (``arena battles import``).
    """

    store: Store
    ttl: float = 2.0
    version: int = 0
    _cache: dict[tuple[Any, ...], tuple[int, float, Any]] = field(default_factory=dict)

    def bump(self) -> None:
        self.version += 1

    async def _cached(self, key: tuple[Any, ...], ttl: float, build: Any) -> Any:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] == self.version and now - hit[1] < ttl:
            return hit[2]
        value = await build()
        self._cache[key] = (self.version, now, value)
        return value

    async def board(
        self,
        metadata: Mapping[str, Mapping[str, Any]],
        *,
        category: str = "overall",
        style_control: bool = False,
        ci: str = "sandwich",
        anchor: str | None = None,
        rounds: int = 100,
        options: Options | None = None,
    ) -> dict[str, Any]:
        options = options or Options()
        anchor_pair = parse_anchor(anchor)
        if ci not in CI_KINDS:
            raise LeaderboardError(f"ci must be one of {', '.join(CI_KINDS)}")

        async def build() -> dict[str, Any]:
            counts = await load_counts(self.store, category)
            used: dict[str, int] | None = None
            if options.active:
                rows = votes_from_rows(await self.store.fetchall(VOTES_SQL, ("anony", f"% {category} %")))
                counts, used = apply_options(rows, options)
            style = await load_style_rows(self.store, category) if style_control else None
            min_votes = 0 if category == "overall" else CATEGORY_MIN_VOTES
            notice = ""
            try:
                board = compute(counts, anchor=anchor_pair, ci=ci, rounds=rounds, min_votes=min_votes, style=style)
            except np.linalg.LinAlgError:
                notice = (
                    "Style control could not be fitted on these votes (the style features do not "
                    "vary independently of the models yet); showing the plain ranking."
                )
                board = compute(counts, anchor=anchor_pair, ci=ci, rounds=rounds, min_votes=min_votes)
            updated = time.time()
            if board is None:
                return empty_json(category, style_control, ci, updated)
            out = board_json(
                board,
                total_votes=counts.total,
                category=category,
                style_control=style_control and not notice,
                metadata=metadata,
                scores=await load_scores(self.store),
                updated=updated,
            )
            out["notice"] = notice or None
            out["options"] = used
            if style is not None and not notice:
                plain = compute(counts, anchor=anchor_pair, ci=ci, rounds=rounds, min_votes=min_votes)
                add_raw_ranking(out, plain)
            return out

        # style control scans the votes table, so it is kept longer between recomputations
        ttl = self.ttl * (15 if style_control else 1)
        key = ("board", category, style_control, ci, anchor, rounds, options)
        return dict(await self._cached(key, ttl, build))

    async def counts(self, category: str = "overall") -> Counts:
        return await self._cached(("counts", category), self.ttl, lambda: load_counts(self.store, category))
