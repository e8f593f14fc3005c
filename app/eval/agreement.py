"""Judge–human agreement as pure functions over arrays: no I/O, seeded bootstraps.

Verdicts are labels ``"A"``, ``"B"`` or ``"tie"`` (a human's ``tie (bothbad)`` is a tie; see
:func:`label`). Each vote pairs one human verdict with the judge's verdict on the same battle.

- :func:`agreement_rate` without ties follows FastChat's MT-bench agreement: a vote where the
  human *or* the judge said tie is left out, and the rest agree or not. With ties, every vote
  counts and a tie only matches a tie (three classes).
- :func:`cohen_kappa` is Cohen's κ over the three classes: (p_o - p_e) / (1 - p_e), p_e from
  each rater's own label frequencies. NaN when p_e is 1 (both raters always gave one same
  label: κ is undefined there).
- :func:`spearman` (ranks with ties averaged) and :func:`kendall_tau_b` compare two boards over
  the models both cover.

Intervals are percentile bootstraps: votes are resampled with replacement for the rates and κ;
for the rank correlations each board's battles are resampled and refitted (Bradley–Terry, the
rating library's own bootstrap), the two boards independently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from app.rating.bt import fit_bradley_terry
from app.rating.cells import Cells
from app.rating.intervals import bootstrap_thetas
from app.rating.numerics import FloatArray

LABELS = ("A", "B", "tie")
TIE = 2  # the code of "tie" (LABELS[TIE])
LEVEL = 0.95
ROUNDS = 1000
_HUMAN = {"model_a": "A", "model_b": "B", "tie": "tie", "tie (bothbad)": "tie", "A": "A", "B": "B"}


def label(winner: str) -> str:
    """A stored winner (``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``) as a verdict label."""
    try:
        return _HUMAN[winner]
    except KeyError:
        raise ValueError(f"not a verdict: {winner!r}") from None


def _labels(values: ArrayLike) -> np.ndarray:
    """Verdicts as codes 0 (A), 1 (B), 2 (tie); codes pass through (the bootstrap's resamples)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > TIE):
            raise ValueError("verdict codes are 0 (A), 1 (B) and 2 (tie)")
        return arr.astype(np.int8, copy=False)
    codes = {name: k for k, name in enumerate(LABELS)}
    found = arr.ravel().tolist()
    bad = sorted({str(v) for v in found} - set(LABELS))
    if bad:
        raise ValueError(f"verdicts are A, B or tie; got {bad}")
    return np.array([codes[v] for v in found], dtype=np.int8).reshape(arr.shape)


def _pair(human: ArrayLike, judge: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    h, j = _labels(human), _labels(judge)
    if h.shape != j.shape or h.ndim != 1:
        raise ValueError("human and judge verdicts must be two lists of one length")
    return h, j


def agreement_rate(human: ArrayLike, judge: ArrayLike, *, with_ties: bool) -> float:
    """Share of votes where the judge and the human agree; NaN when no vote counts."""
    h, j = _pair(human, judge)
    if not with_ties:
        keep = (h != TIE) & (j != TIE)
        h, j = h[keep], j[keep]
    return float(np.mean(h == j)) if h.size else math.nan


def cohen_kappa(human: ArrayLike, judge: ArrayLike) -> float:
    """Cohen's κ over A, B and tie; NaN when undefined (no votes, or p_e = 1)."""
    h, j = _pair(human, judge)
    if not h.size:
        return math.nan
    observed = float(np.mean(h == j))
    n = len(LABELS)
    expected = float(np.bincount(h, minlength=n) @ np.bincount(j, minlength=n)) / h.size**2
    if expected >= 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


def average_ranks(values: ArrayLike) -> FloatArray:
    """Ranks 1..n; tied values share the mean of the ranks they span."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(1, x.size + 1, dtype=np.float64)
    for value in np.unique(x):
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def _check_xy(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("x and y must be two lists of one length")
    return a, b


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's ρ: Pearson's r of the average ranks; NaN under two values or a constant side."""
    a, b = _check_xy(x, y)
    if a.size < 2:
        return math.nan
    ra, rb = average_ranks(a), average_ranks(b)
    da, db = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(da @ da) * float(db @ db))
    return float(da @ db) / denominator if denominator else math.nan


def kendall_tau_b(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's τ-b: (concordant - discordant) / sqrt((n0 - tied x) (n0 - tied y)) over pairs."""
    a, b = _check_xy(x, y)
    if a.size < 2:
        return math.nan
    i, j = np.triu_indices(a.size, k=1)
    sx, sy = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n0 = i.size
    untied_x, untied_y = n0 - int((sx == 0).sum()), n0 - int((sy == 0).sum())
    if not untied_x or not untied_y:
        return math.nan
    return float((sx * sy).sum()) / math.sqrt(untied_x * untied_y)


@dataclass(frozen=True)
class Estimate:
    """A figure with its bootstrap interval (NaN where undefined) and what it was computed on."""

    value: float
    lower: float
    upper: float
    n: int  # votes counted, or models both boards cover

    def as_dict(self) -> dict[str, float | int | None]:
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 4)

        return {"value": clean(self.value), "lower": clean(self.lower), "upper": clean(self.upper), "n": self.n}


def percentile_interval(samples: ArrayLike, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of the finite samples; NaNs when there are none."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if not s.size:
        return math.nan, math.nan
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(s, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_votes(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    human: ArrayLike,
    judge: ArrayLike,
    *,
    rounds: int = ROUNDS,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over votes resampled with replacement (seeded)."""
    h, j = _pair(human, judge)
    if not h.size or rounds < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, h.size, size=(rounds, h.size))
    return percentile_interval([statistic(h[p], j[p]) for p in picks], level)


@dataclass(frozen=True)
class VoteAgreement:
    """The vote-level figures: agreement without and with ties, and Cohen's κ."""

    without_ties: Estimate
    with_ties: Estimate
    kappa: Estimate


def vote_agreement(
    human: ArrayLike, judge: ArrayLike, *, rounds: int = ROUNDS, seed: int = 0, level: float = LEVEL
) -> VoteAgreement:
    """Agreement rates and κ with bootstrap intervals (one seed: every figure sees the same resamples)."""
    h, j = _pair(human, judge)
    strict = (h != TIE) & (j != TIE)

    def rate_without(a: np.ndarray, b: np.ndarray) -> float:
        return agreement_rate(a, b, with_ties=False)

    def rate_with(a: np.ndarray, b: np.ndarray) -> float:
        return agreement_rate(a, b, with_ties=True)

    out = []
    for stat, n in ((rate_without, int(strict.sum())), (rate_with, h.size), (cohen_kappa, h.size)):
        lo, hi = bootstrap_votes(stat, h, j, rounds=rounds, seed=seed, level=level)
        out.append(Estimate(stat(h, j), lo, hi, n))
    return VoteAgreement(*out)


def common_ratings(
    human: Cells, judge: Cells, h_theta: FloatArray, j_theta: FloatArray
) -> tuple[list[str], list[float], list[float]]:
    """The models rated on both boards (sorted) and each board's strengths for them."""
    h_active, j_active = _active(human), _active(judge)
    models = sorted(set(h_active) & set(j_active))
    h_index = {m: k for k, m in enumerate(human.models)}
    j_index = {m: k for k, m in enumerate(judge.models)}
    return models, [float(h_theta[h_index[m]]) for m in models], [float(j_theta[j_index[m]]) for m in models]


def _active(cells: Cells) -> list[str]:
    votes = cells.votes()
    return [m for m, n in zip(cells.models, votes.tolist(), strict=True) if n > 0]


@dataclass(frozen=True)
class RankAgreement:
    """Spearman's ρ and Kendall's τ-b between two boards, over the models both cover."""

    models: list[str]
    spearman: Estimate
    kendall: Estimate


def rank_agreement(
    human: Cells, judge: Cells, *, rounds: int = 200, seed: int = 0, level: float = LEVEL
) -> RankAgreement:
    """Rank correlations of the two Bradley–Terry boards, with intervals from refitting each
    board on its own resampled battles (``rounds`` fits per board)."""
    if not human.total_battles or not judge.total_battles:
        nothing = Estimate(math.nan, math.nan, math.nan, 0)
        return RankAgreement([], nothing, nothing)
    h_fit, j_fit = fit_bradley_terry(human), fit_bradley_terry(judge)
    models, hx, jx = common_ratings(human, judge, h_fit.theta, j_fit.theta)
    n = len(models)
    samples: dict[str, list[float]] = {"spearman": [], "kendall": []}
    if n >= 2 and rounds >= 1:
        h_boot = bootstrap_thetas(human, h_fit, rounds=rounds, seed=seed)
        j_boot = bootstrap_thetas(judge, j_fit, rounds=rounds, seed=seed + 1)
        for r in range(rounds):
            _, a, b = common_ratings(human, judge, h_boot[r], j_boot[r])
            samples["spearman"].append(spearman(a, b))
            samples["kendall"].append(kendall_tau_b(a, b))
    figures = {}
    for name, stat in (("spearman", spearman), ("kendall", kendall_tau_b)):
        lo, hi = percentile_interval(samples[name], level)
        figures[name] = Estimate(stat(hx, jx), lo, hi, n)
    return RankAgreement(models, figures["spearman"], figures["kendall"])


def rank_json(ranks: RankAgreement) -> dict[str, object]:
    """The rank figures as the API's JSON."""
    return {"models": ranks.models, "spearman": ranks.spearman.as_dict(), "kendall": ranks.kendall.as_dict()}
