"""Aggregation of battles into cells (app.rating.cells)."""

from __future__ import annotations

import numpy as np
import pytest

from app.rating import (
    aggregate_battles,
    cells_from_pair_counts,
    drop_ties,
    factorize_models,
    outcome_codes,
)

LABELS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])


def random_battles(n: int, n_models: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    names = np.array([f"model-{k:02d}" for k in range(n_models)] + ["mixtral-8x7b"])
    a = names[rng.integers(0, names.size, n)]
    b = names[rng.integers(0, names.size, n)]
    w = LABELS[rng.integers(0, 4, n)]
    return a, b, w


def same_cells(x, y) -> None:
    assert x.models == y.models
    np.testing.assert_array_equal(x.i, y.i)
    np.testing.assert_array_equal(x.j, y.j)
    np.testing.assert_allclose(x.counts, y.counts)
    np.testing.assert_allclose(x.weights, y.weights)
    np.testing.assert_allclose(x.weights_sq, y.weights_sq)


def test_hand_made_cells() -> None:
    cells = aggregate_battles(
        ["B", "A", "A", "B", "A", "C"],
        ["A", "B", "B", "A", "C", "C"],
        ["model_a", "model_a", "tie", "tie (bothbad)", "model_b", "model_a"],
    )
    assert cells.models == ("A", "B", "C")
    # pair (A, B): B beat A once, A beat B once, two ties; pair (A, C): C won once;
    # the C-vs-C battle is dropped
    assert cells.i.tolist() == [0, 0] and cells.j.tolist() == [1, 2]
    assert cells.counts.tolist() == [[1, 1, 2], [0, 1, 0]]
    assert cells.votes().tolist() == [5, 4, 1]
    assert cells.total_battles == 5
    assert not cells.is_weighted


def test_swapping_every_battle_gives_identical_cells() -> None:
    a, b, w = random_battles(5000, 12, seed=1)
    flipped = np.where(w == "model_a", "model_b", np.where(w == "model_b", "model_a", w))
    same_cells(aggregate_battles(a, b, w), aggregate_battles(b, a, flipped))


def test_arrays_and_pair_counts_agree() -> None:
    a, b, w = random_battles(20_000, 15, seed=2)
    from_rows = aggregate_battles(a, b, w)
    # what the store keeps: one row per ordered pair with wins_a, wins_b, ties
    keys = sorted(set(zip(a.tolist(), b.tolist(), strict=True)))
    index = {k: n for n, k in enumerate(keys)}
    table = np.zeros((len(keys), 3))
    for x, y, res in zip(a.tolist(), b.tolist(), w.tolist(), strict=True):
        table[index[(x, y)], min(int(np.flatnonzero(res == LABELS)[0]), 2)] += 1
    from_counts = cells_from_pair_counts(
        [k[0] for k in keys], [k[1] for k in keys], table[:, 0], table[:, 1], table[:, 2]
    )
    same_cells(from_rows, from_counts)


def test_unicode_list_object_and_integer_inputs_agree() -> None:
    a, b, w = random_battles(30_000, 40, seed=3)
    base = aggregate_battles(a, b, w)
    same_cells(base, aggregate_battles(a.tolist(), b.tolist(), w.tolist()))
    same_cells(base, aggregate_battles(a.astype(object), b.astype(object), w.astype(object)))
    same_cells(base, aggregate_battles(a.astype("U40"), b, w))  # other width, same parity
    same_cells(base, aggregate_battles(a.astype("U41"), b, w.astype("U20")))  # odd and even
    _, ia, ib = factorize_models(a, b)
    same_cells(base, aggregate_battles(ia, ib, outcome_codes(w), models=base.models))
    same_cells(base, aggregate_battles(a, b, w, models=base.models))


def test_rare_names_missed_by_sampling_are_found() -> None:
    a, b, w = random_battles(50_000, 5, seed=4)
    a[12_345], b[777] = "rare-one", "zz-rare-two"
    cells = aggregate_battles(a, b, w)
    assert "rare-one" in cells.models and "zz-rare-two" in cells.models
    same_cells(cells, aggregate_battles(a.tolist(), b.tolist(), w.tolist()))


def test_many_models_use_the_sparse_path_with_the_same_result() -> None:
    rng = np.random.default_rng(5)
    names = np.array([f"m{k}" for k in range(1500)])
    a, b = names[rng.integers(0, 1500, 40_000)], names[rng.integers(0, 1500, 40_000)]
    w = LABELS[rng.integers(0, 4, 40_000)]
    weights = rng.random(40_000)
    dense_like = aggregate_battles(a.tolist(), b.tolist(), w.tolist(), weights=weights)
    same_cells(dense_like, aggregate_battles(a, b, w, weights=weights))
    assert dense_like.n_models == np.unique(np.r_[a, b]).size


def test_weights_sum_and_square_per_outcome() -> None:
    cells = aggregate_battles(["A", "B", "A"], ["B", "A", "B"], ["model_a", "model_b", "tie"], weights=[2.0, 3.0, 0.5])
    assert cells.is_weighted
    assert cells.counts.tolist() == [[2, 0, 1]]
    assert cells.weights.tolist() == [[5.0, 0.0, 0.5]]
    assert cells.weights_sq.tolist() == [[13.0, 0.0, 0.25]]
    stored = cells_from_pair_counts(["B"], ["A"], [4], [1], [2], weights=[0.5])
    assert stored.counts.tolist() == [[1, 4, 2]]
    assert stored.weights.tolist() == [[0.5, 2.0, 1.0]]
    assert stored.weights_sq.tolist() == [[0.25, 1.0, 0.5]]


def test_drop_ties() -> None:
    cells = cells_from_pair_counts(["A", "A"], ["B", "C"], [1, 0], [2, 0], [3, 4])
    plain = drop_ties(cells)
    assert plain.counts.tolist() == [[1, 2, 0]]
    assert plain.j.tolist() == [1]


@pytest.mark.parametrize("winner", [["model_a", "draw"], np.array(["model_a", "modelb"]), np.array([0, 3])])
def test_unknown_outcomes_raise(winner) -> None:
    with pytest.raises(ValueError):
        outcome_codes(winner)


def test_unknown_model_and_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        aggregate_battles(["A"], ["Z"], ["tie"], models=["A", "B"])
    with pytest.raises(ValueError, match="unknown model"):
        aggregate_battles(np.array(["A"]), np.array(["Z"]), ["tie"], models=["A", "B"])
    with pytest.raises(ValueError, match="duplicate"):
        aggregate_battles(["A"], ["B"], ["tie"], models=["A", "B", "A"])
    with pytest.raises(ValueError):
        aggregate_battles(["A", "B"], ["B"], ["tie"])
    with pytest.raises(ValueError):
        aggregate_battles(["A"], ["B"], ["tie"], weights=[-1.0])
    with pytest.raises(ValueError):
        cells_from_pair_counts(["A"], ["B"], [1], [-2], [0])


def test_empty_input() -> None:
    cells = aggregate_battles([], [], [])
    assert cells.n_models == 0 and cells.n_cells == 0 and cells.total_battles == 0
