"""Leaderboard rows: the one entry point the app's API and CLI call.

`compute_leaderboard` fits Bradley-Terry on cells, adds 95% intervals (sandwich
by default, bootstrap on request) and Rank (UB), and returns rows sorted by
rating. `compute_style_leaderboard` does the same with style control. Models
that never played are left out; models below `min_votes` are fitted with
everyone else (so the others' ratings do not move) and then hidden. Ranks are
computed over all fitted models, so a hidden model that is clearly better still
counts in the rank of those shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.rating.bt import FitInfo, fit_bradley_terry
from app.rating.cells import Cells, aggregate_battles, factorize_models
from app.rating.intervals import bootstrap_intervals, rank_upper_bound, sandwich_intervals
from app.rating.numerics import BoolArray, FloatArray
from app.rating.style import STYLE_FEATURE_NAMES
from app.rating.style_control import fit_style_control


@dataclass(frozen=True)
class LeaderboardRow:
    """One model's line on the leaderboard."""

    model: str
    rating: float
    ci_lower: float
    ci_upper: float
    rank_ub: int
    votes: int

    def as_dict(self) -> dict[str, str | float | int]:
        """The JSON shape the app serves."""
        return {
            "model": self.model,
            "rating": self.rating,
            "ci_lower": self.ci_lower,
            "ci_upper": self.ci_upper,
            "rank_ub": self.rank_ub,
            "votes": self.votes,
        }


@dataclass(frozen=True)
class Leaderboard:
    """Rows (best first) plus how they were computed.

    Attributes:
        rows: visible rows sorted by rating, descending.
        info: convergence of the point fit.
        ci: "sandwich" or "bootstrap".
        level: interval coverage.
        anchored: whether the anchor model was present (else mean rating = init).
        hidden: models fitted but hidden for having fewer than `min_votes` votes.
        coefficients: style coefficients for a style-controlled board, else empty.
    """

    rows: tuple[LeaderboardRow, ...]
    info: FitInfo
    ci: str
    level: float
    anchored: bool
    hidden: tuple[str, ...] = ()
    coefficients: Mapping[str, float] | None = None

    def as_dicts(self) -> list[dict[str, str | float | int]]:
        """Rows as JSON-ready dicts."""
        return [row.as_dict() for row in self.rows]


def hide_below_votes(
    rows: Sequence[LeaderboardRow], min_votes: int
) -> tuple[tuple[LeaderboardRow, ...], tuple[str, ...]]:
    """Split rows into (shown, hidden model names) by a vote threshold."""
    shown = tuple(r for r in rows if r.votes >= min_votes)
    hidden = tuple(r.model for r in rows if r.votes < min_votes)
    return shown, hidden


def _rows(
    names: Sequence[str],
    ratings: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    votes: NDArray[np.int64],
    active: BoolArray,
) -> list[LeaderboardRow]:
    idx = np.flatnonzero(active)
    ranks = rank_upper_bound(lower[idx], upper[idx])
    rows = [
        LeaderboardRow(names[k], float(ratings[k]), float(lower[k]), float(upper[k]), int(rank), int(votes[k]))
        for k, rank in zip(idx.tolist(), ranks.tolist(), strict=True)
    ]
    rows.sort(key=lambda r: (-r.rating, r.model))
    return rows


def compute_leaderboard(
    cells: Cells,
    models: Sequence[str] | None = None,
    *,
    anchor: tuple[str, float] | None = None,
    ci: str = "sandwich",
    rounds: int = 100,
    seed: int = 0,
    min_votes: int = 0,
    level: float = 0.95,
    base: float = 10.0,
    scale: float = 400.0,
    init: float = 1000.0,
    ridge: float | None = None,
) -> Leaderboard:
    """Fit, add intervals and Rank (UB), and return the leaderboard.

    Args:
        cells: from `cells_from_pair_counts` (stored counts) or `aggregate_battles`.
        models: display names, one per `cells.models` entry; defaults to those names.
        anchor: (model, score) to pin, e.g. `LMARENA_ANCHOR`; default mean = init.
        ci: "sandwich" (robust, default) or "bootstrap" (`rounds` resamples, `seed`).
        min_votes: hide models with fewer battles (they still take part in the fit).
        level, base, scale, init, ridge: see `fit_bradley_terry` / `sandwich_intervals`.
    """
    names = tuple(cells.models if models is None else models)
    if len(names) != cells.n_models:
        raise ValueError("models must name every model of the cells, in order")
    if ci not in ("sandwich", "bootstrap"):
        raise ValueError('ci must be "sandwich" or "bootstrap"')
    fit = fit_bradley_terry(cells, anchor=anchor, base=base, scale=scale, init=init, ridge=ridge)
    if ci == "sandwich":
        iv = sandwich_intervals(cells, fit, level=level)
    else:
        iv = bootstrap_intervals(cells, fit, rounds=rounds, seed=seed, level=level)
    rows = _rows(names, fit.ratings, iv.lower, iv.upper, cells.votes(), fit.active)
    shown, hidden = hide_below_votes(rows, min_votes)
    return Leaderboard(shown, fit.info, ci, level, fit.anchored, hidden)


def compute_style_leaderboard(
    model_a: ArrayLike,
    model_b: ArrayLike,
    winner: ArrayLike,
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    models: Sequence[str] | None = None,
    weights: ArrayLike | None = None,
    anchor: tuple[str, float] | None = None,
    min_votes: int = 0,
    level: float = 0.95,
    base: float = 10.0,
    scale: float = 400.0,
    init: float = 1000.0,
) -> Leaderboard:
    """Style-controlled leaderboard with sandwich intervals (see `fit_style_control`).

    Style features per side are (n_battles, 4) arrays in `STYLE_FEATURE_NAMES`
    order, e.g. rows of `style_features(text, tokens).as_tuple()`."""
    fit = fit_style_control(
        model_a,
        model_b,
        winner,
        features_a,
        features_b,
        models=models,
        feature_names=STYLE_FEATURE_NAMES,
        weights=weights,
        anchor=anchor,
        level=level,
        base=base,
        scale=scale,
        init=init,
    )
    names, ia, ib = factorize_models(model_a, model_b, fit.models)
    keep = ia != ib
    votes = (np.bincount(ia[keep], minlength=len(names)) + np.bincount(ib[keep], minlength=len(names))).astype(np.int64)
    rows = _rows(names, fit.ratings, fit.lower, fit.upper, votes, fit.active)
    shown, hidden = hide_below_votes(rows, min_votes)
    return Leaderboard(shown, fit.info, "sandwich", level, fit.anchored, hidden, dict(fit.coefficients))


def leaderboards_by_category(
    model_a: ArrayLike,
    model_b: ArrayLike,
    winner: ArrayLike,
    masks: Mapping[str, ArrayLike],
    *,
    weights: ArrayLike | None = None,
    anchor: tuple[str, float] | None = None,
    ci: str = "sandwich",
    rounds: int = 100,
    seed: int = 0,
    min_votes: int = 0,
) -> dict[str, Leaderboard]:
    """One independent fit per category; `masks` maps category name to a battle mask
    (e.g. from `categories.category_masks`)."""
    a, b, win = np.asarray(model_a), np.asarray(model_b), np.asarray(winner)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    out: dict[str, Leaderboard] = {}
    for name, mask in masks.items():
        m = np.asarray(mask, dtype=bool)
        cells = aggregate_battles(a[m], b[m], win[m], weights=None if w is None else w[m])
        out[name] = compute_leaderboard(cells, anchor=anchor, ci=ci, rounds=rounds, seed=seed, min_votes=min_votes)
    return out
