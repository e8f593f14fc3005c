"""Numerical helpers shared by the rating fits: stable logistic functions, the
pair Laplacian, identifiability of Bradley-Terry data and a constrained inverse."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

# The prior used when the maximum-likelihood estimate does not exist (a model that only
# wins or only loses within its component, or models split into components that never
# met): an L2 penalty of PRIOR_RIDGE / 2 * theta^2 on the summed log-likelihood, i.e. a
# standard normal prior on each natural-unit strength (one unit is about 174 rating
# points). Weak next to real data, strong enough that one vote cannot read as certainty.
PRIOR_RIDGE = 1.0


def expit(x: FloatArray) -> FloatArray:
    """Logistic function 1 / (1 + exp(-x)) without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    out: FloatArray = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def softplus(x: FloatArray) -> FloatArray:
    """log(1 + exp(x)) without overflow; -softplus(-d) is log expit(d)."""
    out: FloatArray = np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))
    return out


def rating_factor(base: float, scale: float) -> float:
    """Rating points per natural log-odds unit: scale / ln(base)."""
    if base <= 1.0 or scale <= 0.0:
        raise ValueError("base must be > 1 and scale > 0")
    return scale / math.log(base)


def pair_laplacian(i: IntArray, j: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Sum over pairs of values * (e_i - e_j)(e_i - e_j)^T as a dense n x n matrix.

    This is the shape of both the Bradley-Terry Hessian (values = w p (1 - p)) and
    the sandwich "meat" (values = summed squared per-battle scores)."""
    off = np.asarray(np.bincount(i * n + j, weights=values, minlength=n * n), np.float64)
    off = off.reshape(n, n)
    mat: FloatArray = -(off + off.T)
    diag = np.bincount(i, weights=values, minlength=n) + np.bincount(j, weights=values, minlength=n)
    mat[np.diag_indices(n)] += diag
    return mat


def _reach(adj: BoolArray, start: int) -> BoolArray:
    seen = np.zeros(adj.shape[0], dtype=bool)
    seen[start] = True
    frontier = seen.copy()
    while frontier.any():
        nxt = adj[frontier].any(axis=0) & ~seen
        seen |= nxt
        frontier = nxt
    return seen


def is_identifiable(i: IntArray, j: IntArray, score_i: FloatArray, score_j: FloatArray, n: int) -> bool:
    """Whether the Bradley-Terry MLE exists (finite, unique up to one constant).

    Draw an edge i -> j when i scored against j (a win, or a tie, which counts
    half each way). The MLE exists exactly when this directed graph over the n
    models is strongly connected (Ford 1957; Hunter 2004, assumption 1). Callers
    pass only models that took part in at least one battle."""
    if n <= 1:
        return True
    adj = np.zeros((n, n), dtype=bool)
    adj[i[score_i > 0], j[score_i > 0]] = True
    adj[j[score_j > 0], i[score_j > 0]] = True
    return bool(_reach(adj, 0).all() and _reach(adj.T, 0).all())


def constrained_inverse(hessian: FloatArray, null: FloatArray | None) -> FloatArray:
    """Inverse of a PSD matrix restricted to the complement of a known null space.

    With `null` an orthonormal basis U (columns) of the null space, this returns
    inv(H + U U^T) - U U^T, the Moore-Penrose inverse of H. With `null=None` it is
    the plain inverse (a ridge already made H positive definite)."""
    if null is None:
        out: FloatArray = np.asarray(np.linalg.inv(hessian), dtype=np.float64)
        return out
    proj = null @ null.T
    inv: FloatArray = np.asarray(np.linalg.inv(hessian + proj) - proj, dtype=np.float64)
    return inv
