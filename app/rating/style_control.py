"""Style-controlled Bradley-Terry: model strengths plus style coefficients.

Per battle, logit P(a beats b) = theta_a - theta_b + x . beta, where x holds one
column per style feature: the normalised difference (a - b) / (a + b + 1) of the
two sides' counts, z-scored over the battles. A positive beta means voters
prefer more of that feature at equal model strength; theta is then the strength
"with style held equal". Fitted by Newton on the exact Hessian over the battle
rows (features vary per battle, so there is no aggregation into pair cells);
sandwich intervals from per-battle scores. Ratings use the same scale, mean and
anchor rules as `fit_bradley_terry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from app.rating.bt import FitInfo, anchor_offset
from app.rating.cells import factorize_models, outcome_codes
from app.rating.intervals import z_value
from app.rating.numerics import (
    DEGENERATE_RIDGE,
    BoolArray,
    FloatArray,
    IntArray,
    constrained_inverse,
    expit,
    is_identifiable,
    rating_factor,
    softplus,
)
from app.rating.style import STYLE_FEATURE_NAMES


def style_design(features_a: ArrayLike, features_b: ArrayLike) -> tuple[FloatArray, BoolArray]:
    """Design matrix x (n_battles, n_features) and which columns vary.

    Each column is (a - b) / (a + b + 1), then centred and divided by its standard
    deviation over battles. A column with zero spread is left at zero and
    reported as not varying (its coefficient is not identified)."""
    fa = np.asarray(features_a, dtype=np.float64)
    fb = np.asarray(features_b, dtype=np.float64)
    if fa.shape != fb.shape or fa.ndim != 2:
        raise ValueError("features_a and features_b must both be (n_battles, n_features)")
    if (fa < 0).any() or (fb < 0).any():
        raise ValueError("style counts must be non-negative")
    diff = (fa - fb) / (fa + fb + 1.0)
    if diff.shape[0] == 0:
        return diff, np.zeros(diff.shape[1], dtype=bool)
    mean = diff.mean(axis=0)
    std = diff.std(axis=0)
    varies = std > 1e-12
    x = np.zeros_like(diff)
    x[:, varies] = (diff[:, varies] - mean[varies]) / std[varies]
    return x, varies


@dataclass(frozen=True, eq=False)
class StyleFit:
    """A style-controlled fit with sandwich intervals.

    Attributes:
        models, ratings, offset, active, anchored, info: as in `BTFit`.
        theta: natural-unit strengths, mean zero over active models.
        lower, upper: sandwich interval bounds of the ratings (display scale).
        coefficients: style feature -> coefficient in natural log-odds per
            standard deviation of its normalised difference (0.0 if not identified).
        coefficient_se: their robust standard errors (inf if not identified).
        level: interval coverage.
    """

    models: tuple[str, ...]
    theta: FloatArray
    ratings: FloatArray
    lower: FloatArray
    upper: FloatArray
    offset: float
    active: BoolArray
    anchored: bool
    coefficients: dict[str, float]
    coefficient_se: dict[str, float]
    level: float
    info: FitInfo


def _terms(params: FloatArray, a: IntArray, b: IntArray, x: FloatArray, n: int) -> FloatArray:
    d: FloatArray = params[:n][a] - params[:n][b] + x @ params[n:]
    return d


def _blocks(a: IntArray, b: IntArray, x: FloatArray, n: int, v: FloatArray) -> FloatArray:
    """Sum over battles of v * z z^T with z = (e_a - e_b, x)."""
    f = x.shape[1]
    out = np.zeros((n + f, n + f))
    off = np.bincount(a * n + b, v, n * n).reshape(n, n)
    out[:n, :n] = -(off + off.T)
    out[np.arange(n), np.arange(n)] += np.bincount(a, v, n) + np.bincount(b, v, n)
    vx = x * v[:, None]
    cross = (
        np.stack([np.bincount(a, vx[:, k], n) - np.bincount(b, vx[:, k], n) for k in range(f)], axis=1)
        if f
        else np.zeros((n, 0))
    )
    out[:n, n:] = cross
    out[n:, :n] = cross.T
    out[n:, n:] = x.T @ vx
    return out


def fit_style_control(
    model_a: ArrayLike,
    model_b: ArrayLike,
    winner: ArrayLike,
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    models: Sequence[str] | None = None,
    feature_names: Sequence[str] = STYLE_FEATURE_NAMES,
    weights: ArrayLike | None = None,
    anchor: tuple[str, float] | None = None,
    level: float = 0.95,
    base: float = 10.0,
    scale: float = 400.0,
    init: float = 1000.0,
    ridge: float | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> StyleFit:
    """Joint fit of model ratings and style coefficients over battle rows.

    Args:
        model_a, model_b, winner, models, weights: as in `aggregate_battles`.
        features_a, features_b: (n_battles, n_features) style counts per side,
            columns in `feature_names` order (default `STYLE_FEATURE_NAMES`, from
            `StyleFeatures.as_tuple()`).
        anchor, base, scale, init, ridge, tol, max_iter: as in `fit_bradley_terry`.
        level: coverage of the sandwich intervals.
    """
    factor = rating_factor(base, scale)
    z = z_value(level)
    names, ia, ib = factorize_models(model_a, model_b, models)
    codes = outcome_codes(winner)
    x_all, varies = style_design(features_a, features_b)
    if codes.shape != ia.shape or x_all.shape[0] != ia.size:
        raise ValueError("every per-battle array must have one entry per battle")
    if x_all.shape[1] != len(feature_names):
        raise ValueError("feature_names must name every feature column")
    w_all = np.ones(ia.size) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = (ia != ib) & (w_all > 0)
    ia, ib, codes, w, x = ia[keep], ib[keep], codes[keep], w_all[keep], x_all[keep][:, varies]
    active = np.zeros(len(names), dtype=bool)
    active[ia] = True
    active[ib] = True
    index = np.cumsum(active) - 1
    a, b = index[ia], index[ib]
    n, f = int(active.sum()), x.shape[1]
    y = np.where(codes == 0, 1.0, np.where(codes == 1, 0.0, 0.5))
    win_a = (y > 0).astype(np.float64) * w
    win_b = (y < 1).astype(np.float64) * w
    ok = is_identifiable(a, b, win_a, win_b, n)
    if ridge is None:
        use_ridge = 0.0 if ok else DEGENERATE_RIDGE
    elif ridge == 0.0 and not ok:
        raise ValueError("the maximum-likelihood ratings do not exist for these data")
    else:
        use_ridge = float(ridge)
    null = np.zeros((n + f, 1))
    if n:
        null[:n, 0] = 1.0 / np.sqrt(n)
    fix = null @ null.T if use_ridge == 0.0 else use_ridge * np.eye(n + f)

    def nll(params: FloatArray) -> float:
        d = _terms(params, a, b, x, n)
        return float(w @ (y * softplus(-d) + (1.0 - y) * softplus(d)) + 0.5 * use_ridge * params @ params)

    params = np.zeros(n + f)
    value = nll(params)
    iterations, converged, grad_norm = 0, False, np.inf
    while True:
        p = expit(_terms(params, a, b, x, n))
        r = w * (y - p)
        grad = np.concatenate([np.bincount(b, r, n) - np.bincount(a, r, n), -(x.T @ r)])
        grad += use_ridge * params
        grad_norm = float(np.max(np.abs(grad))) if grad.size else 0.0
        if grad_norm <= tol:
            converged = True
            break
        if iterations >= max_iter:
            break
        hess = _blocks(a, b, x, n, w * p * (1.0 - p))
        step = np.linalg.solve(hess + fix, -grad)
        t, slope, slack = 1.0, float(grad @ step), 1e-12 * (1.0 + abs(value))
        while nll(params + t * step) > value + 1e-4 * t * slope + slack and t >= 1e-12:
            t *= 0.5
        iterations += 1
        if t < 1e-12:
            break
        params = params + t * step
        if n:
            params[:n] -= params[:n].mean()
        value = nll(params)

    p = expit(_terms(params, a, b, x, n))
    bread = _blocks(a, b, x, n, w * p * (1.0 - p))
    meat = _blocks(a, b, x, n, (w * (y - p)) ** 2)
    inv = constrained_inverse(bread + use_ridge * np.eye(n + f), None if use_ridge else null)
    var = np.clip(np.diag(inv @ meat @ inv), 0.0, None)

    theta = np.zeros(len(names))
    theta[active] = params[:n]
    offset, anchored = anchor_offset(names, theta, active, anchor, init, factor)
    ratings = init + offset + factor * theta
    std = np.full(len(names), np.inf)
    std[active] = factor * np.sqrt(var[:n])
    coef = np.zeros(len(feature_names))
    se = np.full(len(feature_names), np.inf)
    coef[varies] = params[n:]
    se[varies] = np.sqrt(var[n:])
    info = FitInfo(converged, iterations, grad_norm, use_ridge, ok)
    return StyleFit(
        names,
        theta,
        ratings,
        ratings - z * std,
        ratings + z * std,
        offset,
        active,
        anchored,
        dict(zip(feature_names, coef.tolist(), strict=True)),
        dict(zip(feature_names, se.tolist(), strict=True)),
        level,
        info,
    )
