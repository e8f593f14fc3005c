"""Intervals and Rank (UB) (app.rating.intervals)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.rating import (
    aggregate_battles,
    bootstrap_intervals,
    cells_from_pair_counts,
    fit_bradley_terry,
    rank_upper_bound,
    sandwich_covariance,
    sandwich_intervals,
)
from app.rating.numerics import expit

Z95 = 1.959963984540054
FACTOR = 400.0 / math.log(10.0)


def synthetic(n_models: int, n_battles: int, seed: int, tie_rate: float = 0.15):
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 0.8, n_models)
    a, b = rng.integers(0, n_models, n_battles), rng.integers(0, n_models, n_battles)
    win = rng.random(n_battles) < expit(strength[a] - strength[b])
    tie = rng.random(n_battles) < tie_rate
    winner = np.where(tie, "tie", np.where(win, "model_a", "model_b"))
    names = np.array([f"m{k:02d}" for k in range(n_models)])
    return aggregate_battles(names[a], names[b], winner)


def test_sandwich_by_hand_for_two_models() -> None:
    # A beat B 3 of 4. At the MLE p = 3/4. Hessian 4 p (1 - p) = 3/4 times the
    # Laplacian L = [[1, -1], [-1, 1]]; meat: 3 (1/4)^2 + 1 (3/4)^2 = 3/4 times L.
    # On mean-zero strengths Cov = L^+ / (3/4) with L^+ = L / 4: Var(theta_A) = 1/3.
    cells = cells_from_pair_counts(["A"], ["B"], [3], [1], [0])
    fit = fit_bradley_terry(cells)
    cov = sandwich_covariance(cells, fit)
    np.testing.assert_allclose(cov, np.array([[1, -1], [-1, 1]]) / 3, atol=1e-9)
    iv = sandwich_intervals(cells, fit)
    half = Z95 * FACTOR * math.sqrt(1 / 3)
    np.testing.assert_allclose(iv.upper - fit.ratings, [half, half], atol=1e-6)
    np.testing.assert_allclose(fit.ratings - iv.lower, [half, half], atol=1e-6)
    assert iv.method == "sandwich" and iv.level == 0.95


def test_sandwich_is_robust_to_ties_not_a_plain_fisher_inverse() -> None:
    # With ties the per-battle score is (1/2 - p), smaller than a win/loss score,
    # so the robust variance is below the model-based inverse Hessian.
    cells = cells_from_pair_counts(["A"], ["B"], [2], [0], [4])  # score 4 of 6
    fit = fit_bradley_terry(cells)
    p = 4 / 6
    hess = 6 * p * (1 - p)
    meat = 2 * (1 - p) ** 2 + 4 * (0.5 - p) ** 2
    var_a = meat / hess**2 / 4  # L^+ = L / 4 on both sides
    assert sandwich_covariance(cells, fit)[0, 0] == pytest.approx(var_a, rel=1e-6)
    assert var_a < 1 / hess / 4


def test_sandwich_and_bootstrap_agree() -> None:
    cells = synthetic(8, 30_000, seed=3)
    fit = fit_bradley_terry(cells)
    sw = sandwich_intervals(cells, fit)
    bs = bootstrap_intervals(cells, fit, rounds=300, seed=1)
    ratio = (bs.upper - bs.lower) / (sw.upper - sw.lower)
    # bootstrap widths from 300 rounds scatter by ~8%; 25% is a wide margin
    assert np.all(np.abs(ratio - 1) < 0.25), ratio
    centre = (bs.upper + bs.lower) / 2 - fit.ratings
    assert np.all(np.abs(centre) < 0.25 * (sw.upper - sw.lower))


def test_bootstrap_is_seeded_and_warm_started() -> None:
    cells = synthetic(6, 5000, seed=4)
    fit = fit_bradley_terry(cells)
    one = bootstrap_intervals(cells, fit, rounds=50, seed=7)
    two = bootstrap_intervals(cells, fit, rounds=50, seed=7)
    other = bootstrap_intervals(cells, fit, rounds=50, seed=8)
    np.testing.assert_array_equal(one.lower, two.lower)
    assert not np.array_equal(one.lower, other.lower)
    assert one.rounds == 50 and one.method == "bootstrap"
    assert np.all(one.lower < fit.ratings) and np.all(fit.ratings < one.upper)


def test_intervals_shift_with_the_anchor() -> None:
    cells = synthetic(5, 4000, seed=5)
    free, pinned = fit_bradley_terry(cells), fit_bradley_terry(cells, anchor=("m02", 1114.0))
    shift = pinned.ratings[0] - free.ratings[0]
    for method in (sandwich_intervals, bootstrap_intervals):
        a, b = method(cells, free), method(cells, pinned)
        np.testing.assert_allclose(b.lower - a.lower, shift, atol=1e-6)
        np.testing.assert_allclose(b.upper - a.upper, shift, atol=1e-6)


def test_degenerate_data_give_finite_ordered_intervals() -> None:
    cells = cells_from_pair_counts(["A", "B"], ["B", "C"], [5, 3], [0, 2], [0, 0])
    fit = fit_bradley_terry(cells)
    for iv in (sandwich_intervals(cells, fit), bootstrap_intervals(cells, fit, rounds=30)):
        assert np.isfinite(iv.lower).all() and np.isfinite(iv.upper).all()
        assert np.all(iv.lower <= fit.ratings + 1e-9) and np.all(fit.ratings <= iv.upper + 1e-9)


def test_bootstrap_round_that_loses_a_models_only_loss_stays_finite() -> None:
    # C lost once and won once: some resamples drop its only loss (or win)
    cells = cells_from_pair_counts(["A", "A", "B"], ["B", "C", "C"], [30, 1, 20], [25, 1, 20], [5, 0, 3])
    fit = fit_bradley_terry(cells)
    assert fit.info.identifiable
    iv = bootstrap_intervals(cells, fit, rounds=200, seed=0)
    assert np.isfinite(iv.lower).all() and np.isfinite(iv.upper).all()


def test_inactive_models_have_infinite_intervals() -> None:
    cells = cells_from_pair_counts(["A"], ["B"], [3], [1], [0], models=["A", "B", "C"])
    iv = sandwich_intervals(cells, fit_bradley_terry(cells))
    assert iv.lower[2] == -np.inf and iv.upper[2] == np.inf


def test_rank_upper_bound_by_hand() -> None:
    lower = np.array([10.0, 5.0, 0.0, -10.0, 0.0])
    upper = np.array([20.0, 15.0, 4.0, -5.0, 10.0])
    # A: nobody's lower bound is above 20 -> 1; B: none above 15 -> 1;
    # C: A (10) and B (5) are above 4 -> 3; D: A, B, C, E above -5 -> 5;
    # E: none above 10 (A's 10 is not strictly above) -> 1
    assert rank_upper_bound(lower, upper).tolist() == [1, 1, 3, 5, 1]


def test_level_changes_width() -> None:
    cells = synthetic(4, 3000, seed=6)
    fit = fit_bradley_terry(cells)
    w95 = sandwich_intervals(cells, fit).upper - fit.ratings
    w80 = sandwich_intervals(cells, fit, level=0.8).upper - fit.ratings
    np.testing.assert_allclose(w80 / w95, 1.2815515655446004 / Z95, rtol=1e-9)
    with pytest.raises(ValueError):
        sandwich_intervals(cells, fit, level=1.5)
