"""Bradley-Terry fit (app.rating.bt): worked examples and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.rating import aggregate_battles, cells_from_pair_counts, fit_bradley_terry
from app.rating.numerics import expit

FACTOR = 400.0 / math.log(10.0)


def two_models(wins_a: float, wins_b: float, ties: float = 0.0):
    return cells_from_pair_counts(["A"], ["B"], [wins_a], [wins_b], [ties])


def gradient(cells, theta: np.ndarray) -> np.ndarray:
    """Gradient of the summed negative log-likelihood, written out independently."""
    g = np.zeros(cells.n_models)
    for i, j, (wi, wj, t) in zip(cells.i, cells.j, cells.weights, strict=True):
        p = 1.0 / (1.0 + math.exp(-(theta[i] - theta[j])))
        r = wi + 0.5 * t - (wi + wj + t) * p
        g[i] -= r
        g[j] += r
    return g


def test_two_models_three_of_four() -> None:
    # A beat B in 3 of 4: P(A beats B) = 3/4, so R_A - R_B = 400 log10(3), mean 1000.
    fit = fit_bradley_terry(two_models(3, 1))
    assert fit.ratings[0] - fit.ratings[1] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert fit.ratings.mean() == pytest.approx(1000.0, abs=1e-6)
    assert fit.ratings[0] == pytest.approx(1000 + 200 * math.log10(3), abs=1e-6)
    assert fit.info.converged and fit.info.identifiable and fit.info.ridge == 0.0


def test_ties_count_half_a_win() -> None:
    # 2 wins + 2 ties against 0 wins is a score of 3 out of 4, the same as 3-1.
    tied = fit_bradley_terry(two_models(2, 0, 2))
    assert tied.ratings[0] - tied.ratings[1] == pytest.approx(400 * math.log10(3), abs=1e-6)
    tie_kinds = aggregate_battles(["A"] * 4, ["B"] * 4, ["model_a", "model_a", "tie", "tie (bothbad)"])
    np.testing.assert_allclose(fit_bradley_terry(tie_kinds).ratings, tied.ratings, atol=1e-9)


def test_ties_pull_two_scores_together() -> None:
    before = fit_bradley_terry(two_models(3, 1))
    after = fit_bradley_terry(two_models(3, 1, 4))  # score 5 of 8
    gap_before = before.ratings[0] - before.ratings[1]
    gap_after = after.ratings[0] - after.ratings[1]
    assert gap_after < gap_before
    assert gap_after == pytest.approx(400 * math.log10(5 / 3), abs=1e-6)


def test_three_models_on_a_chain() -> None:
    # A beat B 2-1 and B beat C 2-1, A and C never met: on a tree each edge's
    # log-odds is its own empirical log-odds, so the ratings step by 400 log10(2).
    cells = cells_from_pair_counts(["A", "B"], ["B", "C"], [2, 2], [1, 1], [0, 0])
    fit = fit_bradley_terry(cells)
    step = 400 * math.log10(2)
    np.testing.assert_allclose(fit.ratings, [1000 + step, 1000, 1000 - step], atol=1e-9)


def test_three_models_in_a_symmetric_cycle_are_equal() -> None:
    cells = cells_from_pair_counts(["A", "B", "C"], ["B", "C", "A"], [2, 2, 2], [1, 1, 1], [0] * 3)
    np.testing.assert_allclose(fit_bradley_terry(cells).ratings, [1000.0] * 3, atol=1e-9)


def test_published_example_journal_citations() -> None:
    # Agresti (2002), Categorical Data Analysis, 2nd ed., p. 448, from Stigler (1994);
    # fitted as the `citations` example in Turner & Firth (2012), "Bradley-Terry
    # Models in R: The BradleyTerry2 Package", JSS 48(9), section 2.1, which
    # reports log-abilities relative to Biometrika of
    # Comm Statist -2.9491, JASA -0.4796, JRSS-B 0.2690.
    # Rows: cited journal (the "winner"); columns: citing journal.
    journals = ["Biometrika", "Comm Statist", "JASA", "JRSS-B"]
    cites = np.array([[714, 730, 498, 221], [33, 425, 68, 17], [320, 813, 1072, 142], [284, 276, 325, 188]])
    rows = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    cells = cells_from_pair_counts(
        [journals[i] for i, _ in rows],
        [journals[j] for _, j in rows],
        [cites[i, j] for i, j in rows],
        [cites[j, i] for i, j in rows],
        [0] * len(rows),
    )
    fit = fit_bradley_terry(cells, base=math.e, scale=1.0, init=0.0)
    relative = fit.ratings - fit.ratings[0]
    np.testing.assert_allclose(relative[1:], [-2.9491, -0.4796, 0.2690], atol=5e-5)


def test_gradient_is_below_tolerance_and_reported() -> None:
    rng = np.random.default_rng(0)
    strength = rng.normal(0, 1, 8)
    a, b = rng.integers(0, 8, 5000), rng.integers(0, 8, 5000)
    y = rng.random(5000) < expit(strength[a] - strength[b])
    names = np.array([f"m{k}" for k in range(8)])
    cells = aggregate_battles(names[a], names[b], np.where(y, "model_a", "model_b"))
    fit = fit_bradley_terry(cells)
    assert fit.info.converged
    assert fit.info.grad_norm <= 1e-8
    assert np.max(np.abs(gradient(cells, fit.theta))) <= 1e-8
    assert 0 < fit.info.iterations < 20


def test_swapping_sides_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    names = np.array(list("ABCDEF"))
    a, b = names[rng.integers(0, 6, 3000)], names[rng.integers(0, 6, 3000)]
    w = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])[rng.integers(0, 4, 3000)]
    flipped = np.where(w == "model_a", "model_b", np.where(w == "model_b", "model_a", w))
    one = fit_bradley_terry(aggregate_battles(a, b, w))
    two = fit_bradley_terry(aggregate_battles(b, a, flipped))
    np.testing.assert_array_equal(one.ratings, two.ratings)


def test_anchor_shifts_every_score_by_one_constant() -> None:
    cells = cells_from_pair_counts(["A", "B", "A"], ["B", "C", "C"], [5, 3, 7], [2, 4, 1], [1, 0, 2])
    free = fit_bradley_terry(cells)
    pinned = fit_bradley_terry(cells, anchor=("B", 1114.0))
    assert pinned.anchored and not free.anchored
    assert pinned.ratings[1] == pytest.approx(1114.0, abs=1e-6)
    shift = pinned.ratings - free.ratings
    np.testing.assert_allclose(shift, shift[0], atol=1e-9)
    missing = fit_bradley_terry(cells, anchor=("not-there", 1114.0))
    assert not missing.anchored
    np.testing.assert_allclose(missing.ratings, free.ratings)


def test_scale_base_and_init_are_explicit() -> None:
    fit = fit_bradley_terry(two_models(3, 1), base=math.e, scale=1.0, init=0.0)
    np.testing.assert_allclose(fit.ratings, [math.log(3) / 2, -math.log(3) / 2], atol=1e-12)


def test_a_model_that_only_wins_gets_a_finite_rating() -> None:
    cells = cells_from_pair_counts(["A", "B", "B"], ["B", "C", "D"], [3, 2, 1], [0, 1, 1], [0, 0, 0])
    fit = fit_bradley_terry(cells)
    assert not fit.info.identifiable
    assert fit.info.ridge > 0 and fit.info.converged
    assert np.isfinite(fit.ratings).all()
    assert fit.ratings[0] == fit.ratings.max()
    # ahead, but the prior keeps it finite and modest: 3 wins against B, not infinity
    assert 100 < fit.ratings[0] - fit.ratings[1] < 400
    with pytest.raises(ValueError, match="do not exist"):
        fit_bradley_terry(cells, ridge=0.0)


def test_disconnected_groups_are_each_centred() -> None:
    cells = cells_from_pair_counts(["A", "C"], ["B", "D"], [3, 1], [1, 3], [0, 0])
    fit = fit_bradley_terry(cells)
    assert not fit.info.identifiable
    assert np.isfinite(fit.ratings).all()
    assert fit.ratings[0] + fit.ratings[1] == pytest.approx(2000.0, abs=1e-6)
    assert fit.ratings[2] + fit.ratings[3] == pytest.approx(2000.0, abs=1e-6)
    # the prior shrinks the 3-1 answer towards even, never past it
    assert 0 < fit.ratings[0] - fit.ratings[1] < 400 * math.log10(3)


def test_models_without_battles_are_inactive() -> None:
    cells = cells_from_pair_counts(["A"], ["B"], [3], [1], [0], models=["A", "B", "C"])
    fit = fit_bradley_terry(cells)
    assert fit.active.tolist() == [True, True, False]
    assert fit.ratings[:2].mean() == pytest.approx(1000.0)
    assert fit.ratings[2] == 1000.0


def test_weights_enter_the_likelihood() -> None:
    # weighting A's wins by 1/3 turns 3-1 into an even score
    cells = aggregate_battles(["A"] * 4, ["B"] * 4, ["model_a"] * 3 + ["model_b"], weights=[1 / 3] * 3 + [1.0])
    np.testing.assert_allclose(fit_bradley_terry(cells).ratings, [1000.0, 1000.0], atol=1e-9)


def test_no_battles() -> None:
    fit = fit_bradley_terry(aggregate_battles([], [], []))
    assert fit.ratings.size == 0 and fit.info.converged
