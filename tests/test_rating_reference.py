"""Reference check against arena-rank (LMArena's published implementation), when installed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from app.rating import aggregate_battles, fit_bradley_terry, sandwich_intervals
from app.rating.numerics import expit


def battles(seed: int = 0, n_models: int = 20, n: int = 60_000):
    rng = np.random.default_rng(seed)
    names = np.array([f"model-{k:02d}" for k in range(n_models)])
    strength = rng.normal(0.0, 0.6, n_models)
    a, b = rng.integers(0, n_models, n), rng.integers(0, n_models, n)
    b = np.where(a == b, (b + 1) % n_models, b)
    win = rng.random(n) < expit(strength[a] - strength[b])
    tie = rng.random(n) < 0.2
    kind = rng.random(n) < 0.5
    winner = np.where(tie, np.where(kind, "tie", "tie (bothbad)"), np.where(win, "model_a", "model_b"))
    return names[a], names[b], winner


def test_scores_and_sandwich_match_arena_rank() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # third-party import-time warnings are not ours
        pd = pytest.importorskip("pandas")
        bt = pytest.importorskip("arena_rank.models.bradley_terry")
        data_utils = pytest.importorskip("arena_rank.utils.data_utils")
        a, b, w = battles()
        ds = data_utils.PairDataset.from_pandas(pd.DataFrame({"model_a": a, "model_b": b, "winner": w}))
        ref = bt.BradleyTerry(n_competitors=len(ds.competitors)).compute_ratings_and_cis(ds, ci_method="sandwich")
        theirs = np.asarray(ref["ratings"], dtype=np.float64)
        their_width = np.asarray(ref["rating_upper"]) - np.asarray(ref["rating_lower"])
    competitors = list(ds.competitors)
    pin = competitors[0]
    cells = aggregate_battles(a, b, w)
    fit = fit_bradley_terry(cells, anchor=(pin, 1000.0))
    order = [cells.models.index(m) for m in competitors]
    ours = fit.ratings[order]
    theirs = theirs + (1000.0 - theirs[0])
    assert np.max(np.abs(ours - theirs)) <= 0.05
    iv = sandwich_intervals(cells, fit)
    our_width = (iv.upper - iv.lower)[order]
    # arena-rank adds a small ridge (1e-5 per battle) to the Hessian diagonal
    np.testing.assert_allclose(our_width, their_width, rtol=0.01)
