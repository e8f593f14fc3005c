"""Anomalous-voter filter (app.rating.voters)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.rating import flag_anomalous_voters, vote_p_values
from app.rating.numerics import expit
from app.rating.voters import benjamini_hochberg, chi2_sf_even


def crowd(n_users: int, votes_each: int, seed: int, spread: float = 1.5):
    """Honest users voting by Bradley-Terry with clear gaps (and some ties)."""
    rng = np.random.default_rng(seed)
    names = np.array([f"m{k}" for k in range(6)])
    strength = np.linspace(spread, -spread, 6)
    n = n_users * votes_each
    a, b = rng.integers(0, 6, n), rng.integers(0, 6, n)
    b = np.where(a == b, (b + 1) % 6, b)
    win = rng.random(n) < expit(strength[a] - strength[b])
    tie = rng.random(n) < 0.1
    winner = np.where(tie, "tie", np.where(win, "model_a", "model_b"))
    users = np.repeat([f"user{k}" for k in range(n_users)], votes_each)
    order = rng.permutation(n)  # interleave users in time
    return users[order], names[a][order], names[b][order], winner[order]


def test_chi2_survival_matches_known_values() -> None:
    assert chi2_sf_even(0.0, 4) == 1.0
    assert chi2_sf_even(2.0, 2) == pytest.approx(math.exp(-1.0))
    # upper 5% points of chi2 with 2 and 10 degrees of freedom
    assert chi2_sf_even(5.991464547107979, 2) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf_even(18.307038053275146, 10) == pytest.approx(0.05, rel=1e-9)
    assert 0.0 <= chi2_sf_even(2000.0, 200) < 1e-100
    with pytest.raises(ValueError):
        chi2_sf_even(1.0, 3)


def test_chi2_survival_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for dof in (2, 8, 40, 200):
        for x in (0.5, dof * 0.8, dof * 1.5, dof * 3.0):
            assert chi2_sf_even(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9)


def test_p_values_by_hand() -> None:
    # other users voted on (A, B): A won 3 times, B once. For u's vote:
    # "B won" -> augmented counts A 3, B 2; as unusual as B: only B's 1 -> p = (1+1)/5
    # "A won" -> augmented A 4, B 1; everything is as unusual -> p = (1+4)/5 = 1
    users = ["x", "y", "z", "w", "u", "u"]
    a = ["A", "B", "A", "A", "A", "B"]
    b = ["B", "A", "B", "B", "B", "A"]
    w = ["model_a", "model_b", "model_a", "model_b", "model_b", "model_b"]
    p = vote_p_values(users, a, b, w)
    # u's own votes are not history for u: history for u is x, y, z, w only
    assert p[4] == pytest.approx(2 / 5)
    assert p[5] == pytest.approx(1.0)


def test_p_values_do_not_depend_on_sides() -> None:
    users, a, b, w = crowd(20, 30, seed=1)
    flipped = np.where(w == "model_a", "model_b", np.where(w == "model_b", "model_a", w))
    np.testing.assert_allclose(vote_p_values(users, a, b, w), vote_p_values(users, b, a, flipped))


def with_spammer(data, seed: int):
    """Append 80 votes by a user who picks a, b or tie uniformly at random."""
    users, a, b, w = data
    rng = np.random.default_rng(seed)
    names = np.array([f"m{k}" for k in range(6)])
    ra, rb = rng.integers(0, 6, 80), rng.integers(0, 6, 80)
    rb = np.where(ra == rb, (rb + 1) % 6, rb)
    random_votes = np.array(["model_a", "model_b", "tie"])[rng.integers(0, 3, 80)]
    return (
        np.r_[users, ["spammer"] * 80],
        np.r_[a, names[ra]],
        np.r_[b, names[rb]],
        np.r_[w, random_votes],
    )


def test_planted_random_voter_is_flagged_by_the_paper_rule() -> None:
    # a decisive crowd: the random voter's upsets are rare on most pairs
    users, a, b, w = with_spammer(crowd(60, 80, seed=0, spread=3.0), seed=10)
    report = flag_anomalous_voters(users, a, b, w, alpha=0.1)
    assert report.flagged_users() == ("spammer",)
    assert report.votes[report.users.index("spammer")] == 80
    keep = report.keep_mask(users)
    assert keep.sum() == users.size - 80 and not keep[-1]
    bh = flag_anomalous_voters(users, a, b, w, alpha=0.1, across_users="bh")
    assert bh.flagged_users() == ("spammer",)


def test_randomized_p_values_are_uniform_and_more_powerful() -> None:
    users, a, b, w = with_spammer(crowd(60, 80, seed=2), seed=3)
    honest = users != "spammer"
    exact = vote_p_values(users, a, b, w, randomized=True)
    printed = vote_p_values(users, a, b, w)
    assert np.all(exact <= printed + 1e-12)  # the printed p-value is conservative
    # under the null -log p is Exp(1): mean 1 (4,800 votes: standard error ~0.015)
    assert abs(-np.log(exact[honest]).mean() - 1.0) < 0.06
    assert -np.log(printed[honest]).mean() < 0.6
    report = flag_anomalous_voters(users, a, b, w, randomized=True, across_users="bh")
    assert "spammer" in report.flagged_users()
    assert report.p_value.argmin() == report.users.index("spammer")
    assert len(report.flagged_users()) <= 3


def test_checkpoints_are_seeded() -> None:
    users, a, b, w = crowd(10, 40, seed=4)
    one = flag_anomalous_voters(users, a, b, w, seed=5)
    two = flag_anomalous_voters(users, a, b, w, seed=5)
    np.testing.assert_array_equal(one.p_value, two.p_value)
    with pytest.raises(ValueError):
        flag_anomalous_voters(users, a, b, w, across_users="holm")


def test_benjamini_hochberg_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.06, 0.0533, 0.5 -> monotone 0.04, 0.0533, 0.0533
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.5])
