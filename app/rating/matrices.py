"""Pairwise matrices for display: battle counts, observed and predicted win rates.

Entry [r, c] is about row model r against column model c, in `cells.models` order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from app.rating.cells import TIE, WIN_I, WIN_J, Cells
from app.rating.numerics import FloatArray, expit, rating_factor


def battle_count_matrix(cells: Cells) -> FloatArray:
    """Symmetric matrix of battle counts between each pair (ties included)."""
    n = cells.n_models
    out = np.zeros((n, n))
    total = cells.counts.sum(axis=1)
    out[cells.i, cells.j] = total
    out[cells.j, cells.i] = total
    return out


def win_rate_matrix(cells: Cells, *, weighted: bool = False) -> FloatArray:
    """Share of battles row won against column, ties counting half.

    NaN where the two never met and on the diagonal. `weighted=True` uses the
    battle weights instead of raw counts."""
    src = cells.weights if weighted else cells.counts
    n = cells.n_models
    wins = np.zeros((n, n))
    games = np.zeros((n, n))
    total = src.sum(axis=1)
    wins[cells.i, cells.j] = src[:, WIN_I] + 0.5 * src[:, TIE]
    wins[cells.j, cells.i] = src[:, WIN_J] + 0.5 * src[:, TIE]
    games[cells.i, cells.j] = total
    games[cells.j, cells.i] = total
    out = np.full((n, n), np.nan)
    met = games > 0
    out[met] = wins[met] / games[met]
    return out


def predicted_win_rate_matrix(ratings: ArrayLike, *, base: float = 10.0, scale: float = 400.0) -> FloatArray:
    """P(row beats column) = 1 / (1 + base ** ((R_col - R_row) / scale)); 0.5 on the diagonal."""
    r = np.asarray(ratings, dtype=np.float64) / rating_factor(base, scale)
    return expit(r[:, None] - r[None, :])
