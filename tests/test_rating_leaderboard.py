"""Leaderboard rows, matrices, categories and data options."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.rating import (
    LMARENA_ANCHOR,
    BattleMeta,
    aggregate_battles,
    battle_count_matrix,
    cap_repeated_prompts,
    categories_for,
    category_mask,
    category_masks,
    cells_from_pair_counts,
    compute_leaderboard,
    fit_bradley_terry,
    hide_below_votes,
    inverse_probability_weights,
    is_coding,
    is_long_prompt,
    is_multi_turn,
    leaderboards_by_category,
    predicted_win_rate_matrix,
    win_rate_matrix,
)


def stored_counts():
    # what the app's store returns: model_a, model_b, wins_a, wins_b, ties
    return (
        ["big", "big", "mid", "mixtral-8x7b-instruct-v0.1", "small", "big"],
        [
            "mid",
            "small",
            "small",
            "big",
            "mixtral-8x7b-instruct-v0.1",
            "mixtral-8x7b-instruct-v0.1",
        ],
        [60, 80, 55, 20, 10, 5],
        [30, 15, 40, 50, 35, 2],
        [10, 5, 5, 10, 5, 1],
    )


def test_leaderboard_from_stored_counts() -> None:
    cells = cells_from_pair_counts(*stored_counts())
    board = compute_leaderboard(cells, anchor=LMARENA_ANCHOR)
    assert [r.model for r in board.rows] == ["big", "mixtral-8x7b-instruct-v0.1", "mid", "small"]
    assert board.anchored and board.ci == "sandwich" and board.info.converged
    mixtral = next(r for r in board.rows if r.model.startswith("mixtral"))
    assert mixtral.rating == pytest.approx(1114.0)
    row = board.as_dicts()[0]
    assert list(row) == ["model", "rating", "ci_lower", "ci_upper", "rank_ub", "votes"]
    assert isinstance(row["rating"], float) and isinstance(row["rank_ub"], int)
    assert row["votes"] == 100 + 100 + 80 + 8
    assert board.rows[0].rank_ub == 1
    assert all(r.ci_lower < r.rating < r.ci_upper for r in board.rows)
    # rank UB is 1 + the number of models clearly above
    for r in board.rows:
        above = sum(o.ci_lower > r.ci_upper for o in board.rows)
        assert r.rank_ub == 1 + above


def test_leaderboard_bootstrap_option() -> None:
    cells = cells_from_pair_counts(*stored_counts())
    boot = compute_leaderboard(cells, ci="bootstrap", rounds=200, seed=1)
    sand = compute_leaderboard(cells)
    assert boot.ci == "bootstrap"
    for b, s in zip(boot.rows, sand.rows, strict=True):
        assert b.model == s.model and b.rating == pytest.approx(s.rating)
        width_b, width_s = b.ci_upper - b.ci_lower, s.ci_upper - s.ci_lower
        assert abs(width_b / width_s - 1) < 0.25
    with pytest.raises(ValueError):
        compute_leaderboard(cells, ci="jackknife")


def test_min_votes_hides_without_refitting() -> None:
    cells = cells_from_pair_counts(*stored_counts())
    full = compute_leaderboard(cells)
    votes = {r.model: r.votes for r in full.rows}
    threshold = sorted(votes.values())[1]
    part = compute_leaderboard(cells, min_votes=threshold)
    hidden = {m for m, v in votes.items() if v < threshold}
    assert set(part.hidden) == hidden and len(hidden) == 1
    assert [r for r in full.rows if r.model not in hidden] == list(part.rows)
    shown, gone = hide_below_votes(full.rows, 10**9)
    assert shown == () and len(gone) == 4


def test_display_names_and_inactive_models() -> None:
    cells = cells_from_pair_counts(["a"], ["b"], [3], [1], [0], models=["a", "b", "c"])
    board = compute_leaderboard(cells, ["Model A", "Model B", "Model C"])
    assert [r.model for r in board.rows] == ["Model A", "Model B"]  # c never played
    with pytest.raises(ValueError):
        compute_leaderboard(cells, ["only one"])


def test_matrices_by_hand() -> None:
    cells = cells_from_pair_counts(["A", "B"], ["B", "C"], [3, 1], [1, 1], [0, 2])
    counts = battle_count_matrix(cells)
    assert counts.tolist() == [[0, 4, 0], [4, 0, 4], [0, 4, 0]]
    wr = win_rate_matrix(cells)
    assert wr[0, 1] == 0.75 and wr[1, 0] == 0.25
    assert wr[1, 2] == 0.5 and wr[2, 1] == 0.5  # 1-1 with two ties
    assert np.isnan(wr[0, 2]) and np.isnan(wr[0, 0])
    fit = fit_bradley_terry(cells_from_pair_counts(["A"], ["B"], [3], [1], [0]))
    pred = predicted_win_rate_matrix(fit.ratings)
    np.testing.assert_allclose(pred, [[0.5, 0.75], [0.25, 0.5]], atol=1e-9)
    r = np.array([1200.0, 1000.0, 900.0])
    pred = predicted_win_rate_matrix(r)
    np.testing.assert_allclose(pred + pred.T, 1.0)
    assert pred[0, 1] == pytest.approx(1 / (1 + 10 ** (-0.5)))


def test_category_predicates() -> None:
    assert is_multi_turn(2) and not is_multi_turn(1)
    assert is_long_prompt("x", prompt_tokens=500) and not is_long_prompt("x", prompt_tokens=499)
    assert is_long_prompt("a" * 2000) and not is_long_prompt("a" * 1999)  # 4 chars per token
    assert is_coding("```\nprint(1)\n```")
    assert is_coding("def f(x):\n    return x")
    assert is_coding("Why does my Python script crash?")
    assert is_coding("SELECT name FROM users")
    assert is_coding("How do I use C++ templates?")
    assert not is_coding("Let me know how to return the class I bought")
    assert not is_coding("Please select a dish from the menu")
    assert not is_coding("Write a poem about the sea")
    meta = BattleMeta(winner="tie", language="EN", turns=3, prompt="def f(x): pass", prompt_tokens=800)
    assert categories_for(meta) == ("overall", "language:en", "multi_turn", "long_prompt", "coding")
    assert categories_for(BattleMeta(winner="model_a")) == ("overall", "no_ties")


def test_category_masks_and_fits() -> None:
    metas = [
        BattleMeta("model_a", "en"),
        BattleMeta("tie", "de"),
        BattleMeta("model_b", "en"),
        BattleMeta("tie (bothbad)", "en", turns=2),
        BattleMeta("model_a", "de"),
    ]
    assert category_mask(metas, "no_ties").tolist() == [True, False, True, False, True]
    masks = category_masks(metas)
    assert list(masks)[0] == "overall"
    assert masks["language:de"].tolist() == [False, True, False, False, True]
    assert masks["multi_turn"].tolist() == [False, False, False, True, False]
    boards = leaderboards_by_category(
        ["A", "A", "B", "A", "B"],
        ["B", "B", "A", "B", "A"],
        [m.winner for m in metas],
        masks,
    )
    assert set(boards) == set(masks)
    en = {r.model: r.votes for r in boards["language:en"].rows}
    assert en == {"A": 3, "B": 3}


def test_cap_repeated_prompts() -> None:
    hashes = np.array(["h1"] * 10 + ["h2"] * 3 + ["h3"])
    keep = cap_repeated_prompts(hashes, 4, seed=0)
    assert keep[:10].sum() == 4 and keep[10:13].all() and keep[13]
    assert np.array_equal(keep, cap_repeated_prompts(hashes, 4, seed=0))
    picks = {tuple(np.flatnonzero(cap_repeated_prompts(hashes, 4, seed=s)[:10])) for s in range(20)}
    assert len(picks) > 1  # which battles survive is random
    with pytest.raises(ValueError):
        cap_repeated_prompts(hashes, 0)


def test_inverse_probability_weights() -> None:
    w = inverse_probability_weights([0.5, 0.25, 0.25], normalise=False)
    np.testing.assert_allclose(w, [2, 4, 4])
    np.testing.assert_allclose(inverse_probability_weights([0.5, 0.25, 0.25]), [0.6, 1.2, 1.2])
    with pytest.raises(ValueError):
        inverse_probability_weights([0.0])
    # oversampled pair (A, B) at 3x: weighting restores the uniform-sampling target
    a = ["A"] * 6 + ["B"] * 2
    b = ["B"] * 6 + ["C"] * 2
    winner = ["model_a"] * 3 + ["model_b"] * 3 + ["model_a", "model_b"]
    prob = [0.75] * 6 + [0.25] * 2
    cells = aggregate_battles(a, b, winner, weights=inverse_probability_weights(prob))
    fit = fit_bradley_terry(cells)
    np.testing.assert_allclose(fit.ratings, [1000.0] * 3, atol=1e-6)
    assert math.isclose(cells.weights.sum(), 8.0)
