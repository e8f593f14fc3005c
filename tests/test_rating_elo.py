"""Online Elo (app.rating.elo)."""

from __future__ import annotations

import numpy as np
import pytest

from app.rating import online_elo


def test_hand_computed_sequence() -> None:
    # K = 4, base 10, scale 400, everyone starts at 1000.
    # 1. A (side a) beats B: E_A = 1/2, update 4 (1 - 1/2) = 2 -> A 1002, B 998.
    # 2. B (side a) ties A: E_B = 1 / (1 + 10^(4/400)) = 0.4942438..., update
    #    4 (0.5 - E_B) = 0.0230248... -> B 998.0230248, A 1001.9769752.
    # 3. A (side a) loses to C: E_A = 1 / (1 + 10^((1000 - 1001.9769752)/400))
    #    = 0.5028455..., update -4 E_A = -2.0113803 -> A 999.9655949, C 1002.0113803.
    elo = online_elo(["A", "B", "A"], ["B", "A", "C"], ["model_a", "tie", "model_b"])
    assert elo.models == ("A", "B", "C")
    ratings = elo.as_dict()
    assert ratings["A"] == pytest.approx(999.9655949, abs=1e-6)
    assert ratings["B"] == pytest.approx(998.0230248, abs=1e-6)
    assert ratings["C"] == pytest.approx(1002.0113803, abs=1e-6)
    assert sum(ratings.values()) == pytest.approx(3000.0)  # Elo conserves the total


def test_order_matters_but_sides_do_not() -> None:
    rng = np.random.default_rng(0)
    names = np.array(list("ABCDE"))
    a, b = names[rng.integers(0, 5, 500)], names[rng.integers(0, 5, 500)]
    w = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])[rng.integers(0, 4, 500)]
    flipped = np.where(w == "model_a", "model_b", np.where(w == "model_b", "model_a", w))
    forward = online_elo(a, b, w).ratings
    np.testing.assert_allclose(online_elo(b, a, flipped).ratings, forward, atol=1e-9)
    assert not np.allclose(online_elo(a[::-1], b[::-1], w[::-1]).ratings, forward)


def test_parameters_are_explicit() -> None:
    elo = online_elo(["A"], ["B"], ["model_a"], k=32.0, init=1500.0)
    np.testing.assert_allclose(elo.ratings, [1516.0, 1484.0])
    untouched = online_elo(["A"], ["B"], ["tie"], models=["A", "B", "C"])
    np.testing.assert_allclose(untouched.ratings, [1000.0, 1000.0, 1000.0])
