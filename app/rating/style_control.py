"""Style-controlled Bradley-Terry: model strengths plus style coefficients.

Per battle, logit P(a beats b) = theta_a - theta_b + x . beta, where x holds one
column per style feature: the normalised difference (a - b) / (a + b + 1) of the
two sides' counts, z-scored over the battles. A positive beta means voters
prefer more of that feature at equal model strength; theta is then the strength
"with style held equal". Fitted by Newton on the exact Hessian over the battle
rows (features vary per battle, so there is no aggregation into pair cells);
sandwich intervals from per-battle scores. Ratings use the same scale, mean,
anchor and prior rules as `fit_bradley_terry`, and the same Newton solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from app.rating.bt import FitInfo, anchor_offset, newton
from app.rating.cells import factorize_models, outcome_codes
from app.rating.intervals import z_value
from app.rating.numerics import (
    PRIOR_RIDGE,
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


@dataclass(frozen=True, eq=False)
class _Battles:
    """The battles a style fit uses: compact model indices, outcomes, weights, design."""

    names: tuple[str, ...]
    active: BoolArray
    a: IntArray
    b: IntArray
    y: FloatArray  # 1 a won, 0 b won, 0.5 tie
    w: FloatArray
    x: FloatArray  # design columns that vary
    varies: BoolArray

    @property
    def n(self) -> int:
        return int(self.active.sum())


def _battles(
    model_a: ArrayLike,
    model_b: ArrayLike,
    winner: ArrayLike,
    features_a: ArrayLike,
    features_b: ArrayLike,
    models: Sequence[str] | None,
    n_features: int,
    weights: ArrayLike | None,
) -> _Battles:
    names, ia, ib = factorize_models(model_a, model_b, models)
    codes = outcome_codes(winner)
    x_all, varies = style_design(features_a, features_b)
    if codes.shape != ia.shape or x_all.shape[0] != ia.size:
        raise ValueError("every per-battle array must have one entry per battle")
    if x_all.shape[1] != n_features:
        raise ValueError("feature_names must name every feature column")
    w_all = np.ones(ia.size) if weights is None else np.asarray(weights, dtype=np.float64)
    if w_all.shape != ia.shape or not np.isfinite(w_all).all() or (w_all < 0).any():
        raise ValueError("weights must be finite, non-negative and one per battle")
    keep = (ia != ib) & (w_all > 0)
    ia, ib, codes = ia[keep], ib[keep], codes[keep]
    active = np.zeros(len(names), dtype=bool)
    active[ia] = True
    active[ib] = True
    index = np.cumsum(active) - 1
    y = np.where(codes == 0, 1.0, np.where(codes == 1, 0.0, 0.5))
    return _Battles(names, active, index[ia], index[ib], y, w_all[keep], x_all[keep][:, varies], varies)


def _choose_ridge(d: _Battles, ridge: float | None) -> tuple[float, bool]:
    ok = is_identifiable(d.a, d.b, (d.y > 0) * d.w, (d.y < 1) * d.w, d.n)
    if ridge is None:
        return (0.0 if ok else PRIOR_RIDGE), ok
    if ridge == 0.0 and not ok:
        raise ValueError("the maximum-likelihood ratings do not exist for these data")
    return float(ridge), ok


def _fit(d: _Battles, ridge: float, tol: float, max_iter: int) -> tuple[FloatArray, bool, int, float]:
    """Newton (the solver of `bt`) on strengths and style coefficients jointly."""
    n, f = d.n, d.x.shape[1]
    null = np.zeros((n + f, 1))
    if n:
        null[:n, 0] = 1.0 / np.sqrt(n)
    fix = null @ null.T if ridge == 0.0 else ridge * np.eye(n + f)

    def nll(params: FloatArray) -> float:
        t = _terms(params, d.a, d.b, d.x, n)
        return float(d.w @ (d.y * softplus(-t) + (1.0 - d.y) * softplus(t)) + 0.5 * ridge * params @ params)

    def derivatives(params: FloatArray) -> tuple[FloatArray, FloatArray]:
        p = expit(_terms(params, d.a, d.b, d.x, n))
        r = d.w * (d.y - p)
        grad = np.concatenate([np.bincount(d.b, r, n) - np.bincount(d.a, r, n), -(d.x.T @ r)])
        return grad + ridge * params, _blocks(d.a, d.b, d.x, n, d.w * p * (1.0 - p)) + fix

    def recentre(params: FloatArray) -> FloatArray:
        if n:
            params[:n] -= params[:n].mean()
        return params

    return newton(nll, derivatives, np.zeros(n + f), recentre=recentre, tol=tol, max_iter=max_iter)


def _variances(d: _Battles, params: FloatArray, ridge: float, identifiable: bool) -> FloatArray:
    """Sandwich variances of (strengths, coefficients); the posterior's when the prior was used."""
    n, f = d.n, d.x.shape[1]
    p = expit(_terms(params, d.a, d.b, d.x, n))
    bread = _blocks(d.a, d.b, d.x, n, d.w * p * (1.0 - p))
    if not identifiable:
        return np.clip(np.diag(constrained_inverse(bread + ridge * np.eye(n + f), None)), 0.0, None)
    meat = _blocks(d.a, d.b, d.x, n, (d.w * (d.y - p)) ** 2)
    null = np.zeros((n + f, 1))
    if n:
        null[:n, 0] = 1.0 / np.sqrt(n)
    inv = constrained_inverse(bread + ridge * np.eye(n + f), None if ridge else null)
    return np.clip(np.diag(inv @ meat @ inv), 0.0, None)


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
    d = _battles(
        model_a,
        model_b,
        winner,
        features_a,
        features_b,
        models,
        len(feature_names),
        weights,
    )
    use_ridge, ok = _choose_ridge(d, ridge)
    params, converged, iterations, grad_norm = _fit(d, use_ridge, tol, max_iter)
    var = _variances(d, params, use_ridge, ok)
    n = d.n
    theta = np.zeros(len(d.names))
    theta[d.active] = params[:n]
    offset, anchored = anchor_offset(d.names, theta, d.active, anchor, init, factor)
    ratings = init + offset + factor * theta
    std = np.full(len(d.names), np.inf)
    std[d.active] = factor * np.sqrt(var[:n])
    coef = np.zeros(len(feature_names))
    se = np.full(len(feature_names), np.inf)
    coef[d.varies] = params[n:]
    se[d.varies] = np.sqrt(var[n:])
    info = FitInfo(converged, iterations, grad_norm, use_ridge, ok)
    return StyleFit(
        d.names,
        theta,
        ratings,
        ratings - z * std,
        ratings + z * std,
        offset,
        d.active,
        anchored,
        dict(zip(feature_names, coef.tolist(), strict=True)),
        dict(zip(feature_names, se.tolist(), strict=True)),
        level,
        info,
    )
