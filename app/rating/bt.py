"""Bradley-Terry maximum likelihood over aggregated cells.

Model: P(i beats j) = 1 / (1 + base ** ((R_j - R_i) / scale)); a tie counts as
half a win and half a loss. In natural units theta = (R - init) * ln(base) / scale
the log-likelihood is that of a logistic regression on rating differences; it is
concave, and Newton's method with a backtracking line search on the exact
Hessian (n x n, built from the cells) converges in a handful of iterations.

Identification: ratings are only defined up to a constant. Without an anchor the
mean rating (over models that played) is `init`; with `anchor=(name, score)`
all ratings are shifted by one constant so that model has that score. When the
MLE does not exist (see `numerics.is_identifiable`: a model with only wins or only
losses, or groups of models that never met) a weak prior keeps the ratings finite
and honest: a standard normal on each natural-unit strength (`PRIOR_RIDGE`), so a
lone win moves a model by about 70 points rather than to infinity. Each group of
models that never met another group is then centred on `init` separately, and the
intervals are those of the posterior (see `intervals`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.rating.cells import TIE, WIN_I, WIN_J, Cells
from app.rating.numerics import (
    PRIOR_RIDGE,
    BoolArray,
    FloatArray,
    IntArray,
    expit,
    is_identifiable,
    pair_laplacian,
    rating_factor,
    softplus,
)

LMARENA_ANCHOR: tuple[str, float] = ("mixtral-8x7b-instruct-v0.1", 1114.0)
"""The anchor LMArena uses: this model is pinned at 1114."""


@dataclass(frozen=True)
class FitInfo:
    """How a fit ended.

    Attributes:
        converged: the max-abs gradient reached `tol`.
        iterations: Newton iterations taken.
        grad_norm: final max-abs gradient of the summed negative log-likelihood
            (plus ridge) in natural units.
        ridge: L2 ridge used (0.0 when the MLE exists and no ridge was asked for).
        identifiable: whether the MLE exists for these data.
    """

    converged: bool
    iterations: int
    grad_norm: float
    ridge: float
    identifiable: bool


@dataclass(frozen=True, eq=False)
class BTFit:
    """A Bradley-Terry fit.

    Attributes:
        models: model names, as in the cells.
        theta: natural-unit strengths, mean zero over active models; 0 for inactive.
        ratings: display ratings, init + factor * theta + offset.
        offset: the anchor shift (0.0 when not anchored).
        active: models with at least one battle (others are not rated).
        anchored: whether the anchor model was present and played.
        base, scale, init: the rating scale.
        info: convergence report.
    """

    models: tuple[str, ...]
    theta: FloatArray
    ratings: FloatArray
    offset: float
    active: BoolArray
    anchored: bool
    base: float
    scale: float
    init: float
    info: FitInfo

    @property
    def factor(self) -> float:
        """Rating points per natural log-odds unit."""
        return rating_factor(self.base, self.scale)

    def to_display(self, theta: FloatArray) -> FloatArray:
        """Map natural-unit values (mean-zero scale) to display ratings of this fit."""
        out: FloatArray = self.init + self.offset + self.factor * theta
        return out


def _nll(theta: FloatArray, i: IntArray, j: IntArray, s: FloatArray, f: FloatArray, ridge: float) -> float:
    d = theta[i] - theta[j]
    return float(s @ softplus(-d) + f @ softplus(d) + 0.5 * ridge * (theta @ theta))


def _line_search(
    nll: Callable[[FloatArray], float], theta: FloatArray, step: FloatArray, value: float, slope: float
) -> tuple[FloatArray, float]:
    """Backtracking (Armijo) along ``step``: the accepted point and its step length (< 1e-12: none)."""
    t = 1.0
    slack = 1e-12 * (1.0 + abs(value))
    while True:
        cand = theta + t * step
        if nll(cand) <= value + 1e-4 * t * slope + slack:
            return cand, t
        t *= 0.5
        if t < 1e-12:
            return cand, t


Derivatives = Callable[[FloatArray], tuple[FloatArray, FloatArray]]
"""params -> (gradient, Hessian) of the objective, the Hessian already made invertible."""


def newton(
    objective: Callable[[FloatArray], float],
    derivatives: Derivatives,
    start: FloatArray,
    *,
    recentre: Callable[[FloatArray], FloatArray],
    tol: float = 1e-8,
    max_iter: int = 100,
) -> tuple[FloatArray, bool, int, float]:
    """Damped Newton's method for a convex objective: (params, converged, iterations, grad max-abs).

    ``recentre`` maps each accepted point back onto the identified subspace (e.g. mean-zero
    strengths). Shared by the pair-cell fit here and the per-battle style-controlled fit."""
    params = recentre(np.array(start, dtype=np.float64))
    value = objective(params)
    iterations, grad_norm = 0, np.inf
    while True:
        grad, hess = derivatives(params)
        grad_norm = float(np.max(np.abs(grad))) if grad.size else 0.0
        if grad_norm <= tol:
            return params, True, iterations, grad_norm
        if iterations >= max_iter:
            return params, False, iterations, grad_norm
        try:
            step = np.asarray(np.linalg.solve(hess, -grad), dtype=np.float64)
        except np.linalg.LinAlgError:
            return params, False, iterations, grad_norm
        cand, t = _line_search(objective, params, step, value, float(grad @ step))
        iterations += 1
        if t < 1e-12:  # no progress possible at float precision
            return params, False, iterations, grad_norm
        params = recentre(cand)
        value = objective(params)


def _centred(theta: FloatArray) -> FloatArray:
    out: FloatArray = theta - theta.mean() if theta.size else theta
    return out


def newton_bt(
    i: IntArray,
    j: IntArray,
    weights: FloatArray,
    n: int,
    *,
    ridge: float,
    start: FloatArray | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> tuple[FloatArray, FitInfo]:
    """Newton's method on compact indices (every model 0..n-1 has played).

    `weights` is (n_cells, 3): i won, j won, tie. Returns mean-zero theta and a
    FitInfo; its `identifiable` field only says whether the ridge was 0 (callers
    that checked identifiability replace it)."""
    s = weights[:, WIN_I] + 0.5 * weights[:, TIE]  # score of i against j
    w_tot = weights.sum(axis=1)
    f = w_tot - s  # score of j against i
    null_fix = np.full((n, n), 1.0 / n) if ridge == 0.0 and n else np.zeros((n, n))
    fix = ridge * np.eye(n) + null_fix

    def derivatives(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        p = expit(theta[i] - theta[j])
        r = s - w_tot * p  # d loglik / d d
        grad = np.bincount(j, r, n) - np.bincount(i, r, n) + ridge * theta
        return grad, pair_laplacian(i, j, w_tot * p * (1.0 - p), n) + fix

    theta, converged, iterations, grad_norm = newton(
        lambda x: _nll(x, i, j, s, f, ridge),
        derivatives,
        np.zeros(n) if start is None else start,
        recentre=_centred,
        tol=tol,
        max_iter=max_iter,
    )
    return theta, FitInfo(converged, iterations, grad_norm, ridge, ridge == 0.0)


def compact(cells: Cells, weights: FloatArray) -> tuple[BoolArray, IntArray, IntArray, FloatArray]:
    """Restrict cells to positive-weight rows and renumber models 0..n_active-1."""
    rows = weights.sum(axis=1) > 0
    active = np.zeros(cells.n_models, dtype=bool)
    active[cells.i[rows]] = True
    active[cells.j[rows]] = True
    index = np.cumsum(active) - 1
    return active, index[cells.i[rows]], index[cells.j[rows]], weights[rows]


def choose_ridge(i: IntArray, j: IntArray, weights: FloatArray, n: int, ridge: float | None) -> tuple[float, bool]:
    """The ridge to use and whether the MLE exists."""
    ok = is_identifiable(i, j, weights[:, WIN_I] + weights[:, TIE], weights[:, WIN_J] + weights[:, TIE], n)
    if ridge is not None:
        if ridge < 0:
            raise ValueError("ridge must be >= 0")
        if ridge == 0.0 and not ok:
            raise ValueError(
                "the maximum-likelihood ratings do not exist for these data "
                "(some model only wins or only loses, or models never met); use ridge=None"
            )
        return ridge, ok
    return (0.0 if ok else PRIOR_RIDGE), ok


def fit_bradley_terry(
    cells: Cells,
    *,
    anchor: tuple[str, float] | None = None,
    base: float = 10.0,
    scale: float = 400.0,
    init: float = 1000.0,
    ridge: float | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
    start: FloatArray | None = None,
) -> BTFit:
    """Fit Bradley-Terry ratings by maximum likelihood.

    Args:
        cells: aggregated battles (`aggregate_battles` / `cells_from_pair_counts`).
        anchor: (model name, score) to pin; default keeps the mean rating at `init`.
            If the model is absent or never played, the fit is left unanchored
            and `anchored` is False.
        base, scale, init: rating scale (10, 400, 1000 as in Elo / LMArena).
        ridge: None chooses 0 when the MLE exists and the prior `PRIOR_RIDGE` when not;
            a number forces that ridge (0 on degenerate data raises ValueError).
        tol: target max-abs gradient of the summed negative log-likelihood.
        max_iter: Newton iteration cap.
        start: optional natural-unit starting point (length n_models).
    """
    factor = rating_factor(base, scale)
    active, ci, cj, w = compact(cells, cells.weights)
    n = int(active.sum())
    use_ridge, ok = choose_ridge(ci, cj, w, n, ridge)
    start_c = None if start is None else np.asarray(start, dtype=np.float64)[active]
    theta_c, info = newton_bt(ci, cj, w, n, ridge=use_ridge, start=start_c, tol=tol, max_iter=max_iter)
    info = FitInfo(info.converged, info.iterations, info.grad_norm, use_ridge, ok)
    theta = np.zeros(cells.n_models)
    theta[active] = theta_c
    offset, anchored = anchor_offset(cells.models, theta, active, anchor, init, factor)
    ratings = init + offset + factor * theta
    return BTFit(cells.models, theta, ratings, offset, active, anchored, base, scale, init, info)


def anchor_offset(
    models: Sequence[str],
    theta: FloatArray,
    active: BoolArray,
    anchor: tuple[str, float] | None,
    init: float,
    factor: float,
) -> tuple[float, bool]:
    """Shift that puts the anchor model at its score, and whether it applied."""
    if anchor is None:
        return 0.0, False
    name, score = anchor
    try:
        k = list(models).index(name)
    except ValueError:
        return 0.0, False
    if not active[k]:
        return 0.0, False
    return float(score) - (init + factor * float(theta[k])), True
