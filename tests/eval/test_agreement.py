"""Judge–human agreement figures against values worked out by hand (in the comments), then
against scipy on random data, and the bootstrap intervals (seeded, around the point value)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from app.eval.agreement import (
    Estimate,
    agreement_rate,
    average_ranks,
    cohen_kappa,
    kendall_tau_b,
    label,
    rank_agreement,
    spearman,
    vote_agreement,
)
from app.rating.cells import aggregate_battles

# Eight votes. Position:   1    2    3    4     5      6      7    8
HUMAN = ["A", "A", "B", "B", "tie", "A", "B", "tie"]
JUDGE = ["A", "B", "B", "B", "tie", "tie", "A", "A"]


def test_agreement_without_ties_leaves_out_a_tie_on_either_side() -> None:
    # Neither side says tie at 1, 2, 3, 4, 7: agreement at 1, 3, 4 -> 3 of 5.
    assert agreement_rate(HUMAN, JUDGE, with_ties=False) == pytest.approx(3 / 5)


def test_agreement_with_ties_counts_every_vote() -> None:
    # Equal at 1, 3, 4, 5 -> 4 of 8.
    assert agreement_rate(HUMAN, JUDGE, with_ties=True) == pytest.approx(4 / 8)


def test_cohen_kappa_by_hand() -> None:
    # p_o = 4/8. Human: A 3, B 3, tie 2; judge: A 3, B 3, tie 2 (of 8).
    # p_e = (3*3 + 3*3 + 2*2) / 64 = 22/64.  kappa = (32/64 - 22/64) / (1 - 22/64) = 10/42.
    assert cohen_kappa(HUMAN, JUDGE) == pytest.approx(10 / 42)
    # Uneven marginals: human A A A B, judge A A B B. p_o = 3/4;
    # p_e = (3/4)(2/4) + (1/4)(2/4) = 8/16 = 1/2; kappa = (3/4 - 1/2) / (1/2) = 1/2.
    assert cohen_kappa(["A", "A", "A", "B"], ["A", "A", "B", "B"]) == pytest.approx(0.5)


def test_kappa_matches_its_definition_on_a_scipy_contingency_table() -> None:
    """Cross-check on random votes with scipy's contingency table (kappa from its definition)."""
    rng = np.random.default_rng(5)
    human = rng.choice(["A", "B", "tie"], size=300, p=[0.45, 0.4, 0.15])
    judge = np.where(rng.random(300) < 0.6, human, rng.choice(["A", "B", "tie"], size=300))
    table = stats.contingency.crosstab(human, judge).count
    n = table.sum()
    p_o = np.trace(table) / n
    p_e = (table.sum(axis=0) * table.sum(axis=1)).sum() / n**2
    assert cohen_kappa(human, judge) == pytest.approx((p_o - p_e) / (1 - p_e))


def test_degenerate_kappa_and_empty_rates_are_nan() -> None:
    assert math.isnan(cohen_kappa(["A", "A"], ["A", "A"]))  # p_e = 1: undefined
    assert math.isnan(cohen_kappa([], []))
    assert math.isnan(agreement_rate(["tie"], ["A"], with_ties=False))
    with pytest.raises(ValueError, match="A, B or tie"):
        agreement_rate(["A"], ["model_a"], with_ties=True)
    with pytest.raises(ValueError):
        cohen_kappa(["A"], ["A", "B"])


def test_labels_of_stored_winners() -> None:
    assert [label(w) for w in ("model_a", "model_b", "tie", "tie (bothbad)")] == ["A", "B", "tie", "tie"]
    with pytest.raises(ValueError):
        label("A>>B")


def test_rank_correlations_by_hand() -> None:
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    # d = -1, 1, -1, 1, 0 -> sum d^2 = 4; rho = 1 - 6*4 / (5 * 24) = 0.8
    assert spearman(x, y) == pytest.approx(0.8)
    # 10 pairs, discordant (1,2) and (3,4): tau = (8 - 2) / 10 = 0.6
    assert kendall_tau_b(x, y) == pytest.approx(0.6)
    assert spearman(x, x[::-1]) == pytest.approx(-1.0) and kendall_tau_b(x, x[::-1]) == pytest.approx(-1.0)


def test_rank_correlations_with_ties_by_hand() -> None:
    x, y = [1, 2, 2, 3], [1, 2, 3, 3]
    # Average ranks: x 1, 2.5, 2.5, 4; y 1, 2, 3.5, 3.5. Centred: x -1.5, 0, 0, 1.5;
    # y -1.5, -0.5, 1, 1. r = (2.25 + 1.5) / sqrt(4.5 * 4.5) = 3.75 / 4.5
    assert list(average_ranks(x)) == [1, 2.5, 2.5, 4]
    assert spearman(x, y) == pytest.approx(3.75 / 4.5)
    # Pairs: 4 concordant, 0 discordant, one tied in x only, one tied in y only, of 6:
    # tau_b = 4 / sqrt((6 - 1) * (6 - 1)) = 0.8
    assert kendall_tau_b(x, y) == pytest.approx(0.8)
    assert math.isnan(spearman([1], [2])) and math.isnan(kendall_tau_b([1, 1], [1, 2]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_correlations_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=12).astype(float)  # with ties
    y = x + rng.normal(0, 2, size=12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y, variant="b").statistic)


def test_vote_agreement_intervals_are_seeded_and_hold_the_value() -> None:
    human = HUMAN * 10
    judge = JUDGE * 10
    first = vote_agreement(human, judge, rounds=300, seed=7)
    again = vote_agreement(human, judge, rounds=300, seed=7)
    assert first == again
    assert first.with_ties.value == pytest.approx(0.5) and first.with_ties.n == 80
    assert first.without_ties.value == pytest.approx(0.6) and first.without_ties.n == 50
    assert first.kappa.value == pytest.approx(10 / 42)
    for e in (first.without_ties, first.with_ties, first.kappa):
        assert e.lower < e.value < e.upper
        assert e.upper - e.lower < 0.5
    other = vote_agreement(human, judge, rounds=300, seed=8)
    assert other.kappa.lower != first.kappa.lower


def _battles(strength: dict[str, float], n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    names = sorted(strength)
    a, b, w = [], [], []
    for _ in range(n):
        x, y = rng.choice(names, size=2, replace=False)
        p = 1 / (1 + math.exp(strength[y] - strength[x]))
        a.append(str(x))
        b.append(str(y))
        w.append("model_a" if rng.random() < p else "model_b")
    return a, b, w


def test_board_correlation_over_the_models_both_cover() -> None:
    human = aggregate_battles(*_battles({"m1": 2.0, "m2": 1.0, "m3": 0.0, "m4": -1.0, "only-human": 0.5}, 2000, 1))
    # the judge ranks m1..m4 in the same order (and rates a model humans never saw)
    same = aggregate_battles(*_battles({"m1": 3.0, "m2": 1.5, "m3": 0.0, "m4": -1.5, "only-judge": 9.0}, 2000, 2))
    ranks = rank_agreement(human, same, rounds=50, seed=3)
    assert ranks.models == ["m1", "m2", "m3", "m4"]
    assert ranks.spearman == Estimate(1.0, ranks.spearman.lower, ranks.spearman.upper, 4)
    assert ranks.kendall.value == pytest.approx(1.0) and ranks.kendall.n == 4
    assert 0.0 < ranks.spearman.lower <= 1.0 and ranks.spearman.upper == pytest.approx(1.0)
    # a judge with the order reversed
    flipped = aggregate_battles(*_battles({"m1": -1.5, "m2": 0.0, "m3": 1.5, "m4": 3.0}, 2000, 4))
    reverse = rank_agreement(human, flipped, rounds=50, seed=3)
    assert reverse.spearman.value == pytest.approx(-1.0) and reverse.kendall.value == pytest.approx(-1.0)
    assert rank_agreement(human, same, rounds=50, seed=3) == ranks  # seeded


def test_board_correlation_of_an_empty_board_is_undefined() -> None:
    human = aggregate_battles(*_battles({"m1": 1.0, "m2": 0.0}, 50, 1))
    empty = aggregate_battles([], [], [])
    ranks = rank_agreement(human, empty, rounds=10)
    assert ranks.models == [] and math.isnan(ranks.spearman.value) and ranks.spearman.as_dict()["value"] is None
