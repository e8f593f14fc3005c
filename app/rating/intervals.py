"""Confidence intervals for Bradley-Terry ratings and the Rank (UB) built on them.

Sandwich (default): the Huber-White robust covariance H^+ B H^+, where H is the
Hessian of the negative log-likelihood and B the sum over battles of the outer
products of per-battle scores w (y - p) (e_i - e_j). Both are computed from the
cells: a cell with wins_i, wins_j and ties at fitted p contributes
    H: W p (1 - p)
    B: w2_i (1 - p)^2 + w2_j p^2 + w2_tie (1/2 - p)^2
times (e_i - e_j)(e_i - e_j)^T, where W sums battle weights and w2 squared
weights. H^+ is the inverse on the mean-zero subspace, so the intervals are
those of mean-centred ratings. An anchor only shifts them by the same constant
as the ratings (the anchor model keeps its own uncertainty). When the MLE does
not exist the fit uses a prior (see `bt`), and the intervals are the posterior's
normal approximation inv(H + ridge I), for the bootstrap too (as a floor).

Bootstrap (option): multinomial resampling of the aggregated cell counts (each
(pair, outcome) category drawn in proportion to its count, N battles per round),
each round refitted by Newton from the point estimate; percentile intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from app.rating.bt import BTFit, choose_ridge, compact, newton_bt
from app.rating.cells import TIE, WIN_I, WIN_J, Cells
from app.rating.numerics import (
    FloatArray,
    IntArray,
    constrained_inverse,
    expit,
    pair_laplacian,
)


@dataclass(frozen=True, eq=False)
class Intervals:
    """Per-model interval bounds on the display scale of the fit.

    Attributes:
        lower, upper: bounds (-inf/+inf for models that never played).
        method: "sandwich" or "bootstrap".
        level: coverage, e.g. 0.95.
        rounds: bootstrap rounds (0 for sandwich).
        std: standard error (sandwich) or bootstrap standard deviation, display scale.
    """

    lower: FloatArray
    upper: FloatArray
    method: str
    level: float
    rounds: int
    std: FloatArray


def z_value(level: float) -> float:
    """Two-sided normal quantile for a coverage level (1.959964 for 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _bread(cells: Cells, fit: BTFit) -> tuple[FloatArray, FloatArray, IntArray, IntArray, FloatArray]:
    """(Hessian of the active models, their theta, pair indices, fitted p, cell rows used)."""
    active, ci, cj, w = compact(cells, cells.weights)
    theta = fit.theta[active]
    p = expit(theta[ci] - theta[cj])
    return pair_laplacian(ci, cj, w.sum(axis=1) * p * (1.0 - p), theta.size), p, ci, cj, w


def sandwich_covariance(cells: Cells, fit: BTFit) -> FloatArray:
    """Robust covariance of the active models' natural-unit strengths.

    Returned for active models only (rows/columns in model order). When the MLE does not
    exist and the fit used the prior, this is the posterior covariance inv(H + ridge I)
    instead: a sandwich built from a handful of one-sided votes would claim a certainty
    the data do not have."""
    bread, p, ci, cj, _ = _bread(cells, fit)
    n = bread.shape[0]
    ridge = fit.info.ridge
    if not fit.info.identifiable:
        posterior: FloatArray = constrained_inverse(bread + ridge * np.eye(n), None)
        return posterior
    rows = cells.weights.sum(axis=1) > 0
    w2 = cells.weights_sq[rows]
    meat_vals = w2[:, WIN_I] * (1.0 - p) ** 2 + w2[:, WIN_J] * p**2 + w2[:, TIE] * (0.5 - p) ** 2
    meat = pair_laplacian(ci, cj, meat_vals, n)
    if ridge > 0.0:
        inv = constrained_inverse(bread + ridge * np.eye(n), None)
    else:
        inv = constrained_inverse(bread, np.full((n, 1), 1.0 / np.sqrt(n)) if n else None)
    cov: FloatArray = inv @ meat @ inv
    return cov


def sandwich_intervals(cells: Cells, fit: BTFit, *, level: float = 0.95) -> Intervals:
    """Normal intervals rating +/- z * robust standard error (see module docstring)."""
    z = z_value(level)
    std = np.full(cells.n_models, np.inf)
    if fit.active.any():
        cov = sandwich_covariance(cells, fit)
        std[fit.active] = fit.factor * np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return Intervals(fit.ratings - z * std, fit.ratings + z * std, "sandwich", level, 0, std)


def bootstrap_thetas(cells: Cells, fit: BTFit, *, rounds: int = 100, seed: int = 0, tol: float = 1e-8) -> FloatArray:
    """(rounds, n_models) natural-unit strengths refitted on resampled cell counts.

    Each round draws N battles over the (pair, outcome) categories with
    probabilities proportional to their counts (numpy Generator seeded by `seed`),
    keeps each category's mean battle weight, and refits by Newton starting from
    the point estimate. Models with no battles in a round keep strength 0."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    rng = np.random.default_rng(seed)
    flat_counts = cells.counts.reshape(-1)
    total = int(round(float(flat_counts.sum())))
    out = np.zeros((rounds, cells.n_models))
    if total == 0:
        return out
    cats = np.flatnonzero(flat_counts > 0)
    draws = rng.multinomial(total, flat_counts[cats] / flat_counts[cats].sum(), size=rounds)
    unit_w = cells.weights.reshape(-1)[cats] / flat_counts[cats]
    base_ridge = fit.info.ridge
    for r in range(rounds):
        w = np.zeros(flat_counts.size)
        w[cats] = draws[r] * unit_w
        w3 = w.reshape(-1, 3)
        active, ci, cj, wc = compact(cells, w3)
        n = int(active.sum())
        # every (pair, outcome) drawn at least once: same graph as the point fit
        if bool((draws[r] > 0).all()):
            ridge = base_ridge
        else:
            ridge, _ = choose_ridge(ci, cj, wc, n, None)
            ridge = max(ridge, base_ridge)
        start = fit.theta[active]
        theta_c, _ = newton_bt(ci, cj, wc, n, ridge=ridge, start=start, tol=tol)
        out[r, active] = theta_c
    return out


def bootstrap_intervals(
    cells: Cells, fit: BTFit, *, rounds: int = 100, seed: int = 0, level: float = 0.95
) -> Intervals:
    """Percentile intervals (2.5 / 97.5 for level 0.95) over bootstrap refits."""
    z_value(level)
    thetas = bootstrap_thetas(cells, fit, rounds=rounds, seed=seed)
    tail = 100.0 * (1.0 - level) / 2.0
    samples = fit.to_display(thetas)
    lower = np.percentile(samples, tail, axis=0)
    upper = np.percentile(samples, 100.0 - tail, axis=0)
    std = samples.std(axis=0)
    inactive = ~fit.active
    if not fit.info.identifiable:  # resampling one-sided votes cannot show their uncertainty
        prior = sandwich_intervals(cells, fit, level=level)
        lower, upper = np.minimum(lower, prior.lower), np.maximum(upper, prior.upper)
        std = np.maximum(std, prior.std)
    lower[inactive], upper[inactive], std[inactive] = -np.inf, np.inf, np.inf
    return Intervals(lower, upper, "bootstrap", level, rounds, std)


def rank_upper_bound(lower: FloatArray, upper: FloatArray) -> IntArray:
    """Rank (UB): 1 + number of models whose lower bound is strictly above this
    model's upper bound (Chiang et al. 2024, Section 5, "approximate rankings")."""
    lo = np.asarray(lower, dtype=np.float64)
    up = np.asarray(upper, dtype=np.float64)
    rank: IntArray = 1 + (lo[None, :] > up[:, None]).sum(axis=1)
    return rank
