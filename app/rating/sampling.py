"""Data options applied before aggregation: prompt de-duplication and
inverse-probability weights."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from app.rating.numerics import BoolArray, FloatArray


def cap_repeated_prompts(prompt_hash: ArrayLike, cap: int, *, seed: int = 0) -> BoolArray:
    """Mask keeping at most `cap` battles per identical prompt (by hash).

    Prompts seen more than `cap` times keep a uniformly random subset of `cap`
    battles (numpy Generator seeded by `seed`); others keep all."""
    if cap < 1:
        raise ValueError("cap must be >= 1")
    hashes = np.asarray(prompt_hash)
    n = hashes.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    _, group = np.unique(hashes, return_inverse=True)
    shuffled = np.random.default_rng(seed).permutation(n)
    order = shuffled[np.argsort(group[shuffled], kind="stable")]  # random within group
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    keep = np.zeros(n, dtype=bool)
    keep[order] = (np.arange(n) - first) < cap
    return keep


def inverse_probability_weights(probability: ArrayLike, *, normalise: bool = True) -> FloatArray:
    """Battle weights 1 / p from each battle's stored pair-sampling probability.

    Weighting by 1/P(pair) targets a score under uniform pair sampling (Chiang et
    al. 2024, eq. 7). With `normalise` the weights are scaled to mean 1, so the
    total weight equals the number of battles; fits and intervals do not depend
    on that scale, only the size of a ridge does."""
    p = np.asarray(probability, dtype=np.float64)
    if not np.isfinite(p).all() or (p <= 0).any() or (p > 1).any():
        raise ValueError("probabilities must be in (0, 1]")
    w: FloatArray = 1.0 / p
    if normalise and w.size:
        w = w / w.mean()
    return w
