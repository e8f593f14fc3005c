"""Aggregated battle data: per unordered model pair, counts of wins and ties.

Every fit in this package works on `Cells`, never on raw battle rows. A cell is
one unordered pair (i, j) with i < j and three outcome columns: i won, j won,
tie. Both kinds of tie ("tie" and "tie (bothbad)") land in the tie column and
count as half a win and half a loss. Because pairs are stored with i < j and the
model list is sorted by name, swapping the sides of every battle yields the
identical `Cells`.

Each outcome column is kept three ways: the raw battle count (for vote totals
and bootstrap resampling), the sum of battle weights (for the likelihood) and
the sum of squared battle weights (for the sandwich "meat"). Without weights
the three are the same array.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.rating.numerics import FloatArray, IntArray

WIN_I, WIN_J, TIE = 0, 1, 2
"""Outcome columns of a cell: the lower-index model won, the higher won, a tie."""

_DENSE_MODELS = 1000  # up to this many models, aggregate in a dense n x n x 3 array

WINNER_CODES: dict[str, int] = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 2}
"""Battle outcome labels (as stored by the arena) and their codes: 0 = side a won,
1 = side b won, 2 = tie of either kind."""


def outcome_codes(winner: ArrayLike) -> NDArray[np.int8]:
    """Map winner labels ("model_a", "model_b", "tie", "tie (bothbad)") to codes 0/1/2.

    Integer input is taken as codes already and only validated."""
    arr = winner if isinstance(winner, np.ndarray) else None
    if arr is None and isinstance(winner, Sequence) and len(winner) and isinstance(winner[0], int | np.integer):
        arr = np.asarray(winner)
    if arr is not None and arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 2):
            raise ValueError("outcome codes must be 0 (a won), 1 (b won) or 2 (tie)")
        return arr.astype(np.int8)
    try:
        return lookup_objects(winner, WINNER_CODES).astype(np.int8)
    except KeyError as exc:
        raise ValueError(f"unknown winner label {exc.args[0]!r}") from None


def _column(values: ArrayLike) -> Any:
    """Keep numpy arrays and lists as they are; make other iterables lists."""
    if isinstance(values, np.ndarray | list):
        return values
    return list(np.asarray(values).tolist()) if np.ndim(values) else [values]


def lookup_objects(values: Any, lookup: dict[Any, int]) -> IntArray:
    """Codes via a dict, for lists and arrays of names (KeyError on unknown names)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return np.fromiter(map(lookup.__getitem__, items), np.intp, len(items))


def factorize_models(
    model_a: ArrayLike, model_b: ArrayLike, models: Sequence[str] | None = None
) -> tuple[tuple[str, ...], IntArray, IntArray]:
    """Turn two columns of model names into (models, index_a, index_b).

    Without `models`, the list is the sorted set of names seen on either side, so
    it does not depend on which side a model sat. With `models`, that order is
    kept and an unknown name raises ValueError; integer arrays are then taken as
    indices into `models`. Names are mapped through a dict (about 70 ms per
    million rows); callers with millions of rows pass integer codes."""
    a, b = _column(model_a), _column(model_b)
    if len(a) != len(b) or np.ndim(a) != 1:
        raise ValueError("model_a and model_b must be 1-d and of equal length")
    ints = all(isinstance(c, np.ndarray) and c.dtype.kind in "iu" for c in (a, b))
    if models is not None:
        names = tuple(models)
        if len(set(names)) != len(names):
            raise ValueError("duplicate model names")
        if ints:
            ia, ib = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
            if ia.size and (min(ia.min(), ib.min()) < 0 or max(ia.max(), ib.max()) >= len(names)):
                raise ValueError("model index out of range")
            return names, ia, ib
        lookup = {name: k for k, name in enumerate(names)}
        try:
            return names, lookup_objects(a, lookup), lookup_objects(b, lookup)
        except KeyError as exc:
            raise ValueError(f"unknown model {exc.args[0]!r}") from None
    if ints:
        raise ValueError("integer model columns need the `models` list")
    seen: defaultdict[Any, int] = defaultdict(count().__next__)
    ia, ib = lookup_objects(a, seen), lookup_objects(b, seen)
    found = [str(x) for x in seen]
    order = sorted(range(len(found)), key=found.__getitem__)
    remap = np.empty(len(found), dtype=np.intp)
    remap[order] = np.arange(len(found))
    return tuple(found[k] for k in order), remap[ia], remap[ib]


@dataclass(frozen=True, eq=False)
class Cells:
    """Battle outcomes aggregated per unordered model pair (see module docstring).

    Attributes:
        models: model names; indices below refer to this tuple.
        i, j: pair indices with i < j, one entry per cell.
        counts: (n_cells, 3) raw battle counts: i won, j won, tie.
        weights: (n_cells, 3) summed battle weights (equals `counts` unweighted).
        weights_sq: (n_cells, 3) summed squared battle weights.
    """

    models: tuple[str, ...]
    i: IntArray
    j: IntArray
    counts: FloatArray
    weights: FloatArray
    weights_sq: FloatArray

    @property
    def n_models(self) -> int:
        """Number of models (including any without battles)."""
        return len(self.models)

    @property
    def n_cells(self) -> int:
        """Number of model pairs with at least one battle."""
        return int(self.i.size)

    @property
    def total_battles(self) -> int:
        """Number of battles (raw count, ties included)."""
        return int(round(float(self.counts.sum())))

    @property
    def is_weighted(self) -> bool:
        """Whether battle weights differ from plain counts."""
        return self.weights is not self.counts

    def votes(self) -> NDArray[np.int64]:
        """Battles per model (raw counts, ties included)."""
        per_cell = self.counts.sum(axis=1)
        n = self.n_models
        total = np.bincount(self.i, per_cell, n) + np.bincount(self.j, per_cell, n)
        return np.rint(total).astype(np.int64)

    def with_weights(self, weights: FloatArray, weights_sq: FloatArray) -> Cells:
        """The same counts with other weight columns (same shape as `counts`)."""
        return Cells(self.models, self.i, self.j, self.counts, weights, weights_sq)


def _build(
    models: tuple[str, ...],
    lo: IntArray,
    hi: IntArray,
    columns: FloatArray,
    weighted: tuple[FloatArray, FloatArray] | None,
) -> Cells:
    """Sum rows of (lo < hi, 3 outcome columns) into cells; `weighted` holds the
    matching weight and squared-weight columns. Self-pairs are dropped."""
    n = len(models)
    keep = lo != hi  # a model against itself carries no information
    pairs, inverse = np.unique(lo[keep] * n + hi[keep], return_inverse=True)

    def total(values: FloatArray) -> FloatArray:
        v = values[keep]
        return np.stack([np.bincount(inverse, v[:, k], minlength=pairs.size) for k in range(3)], axis=1)

    counts = total(columns)
    present = counts.sum(axis=1) > 0
    i, j = pairs[present] // n, pairs[present] % n
    counts = counts[present]
    if weighted is None:
        return Cells(models, i, j, counts, counts, counts)
    return Cells(models, i, j, counts, total(weighted[0])[present], total(weighted[1])[present])


def _canonical(ia: IntArray, ib: IntArray, cols: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
    swap = ia > ib
    lo = np.where(swap, ib, ia)
    hi = np.where(swap, ia, ib)
    out = cols.copy()
    out[swap, WIN_I] = cols[swap, WIN_J]
    out[swap, WIN_J] = cols[swap, WIN_I]
    return lo, hi, out


def _weights(weights: ArrayLike | None, size: int) -> FloatArray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (size,):
        raise ValueError("weights must have one entry per row")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    return w


def aggregate_battles(
    model_a: ArrayLike,
    model_b: ArrayLike,
    winner: ArrayLike,
    *,
    models: Sequence[str] | None = None,
    weights: ArrayLike | None = None,
) -> Cells:
    """Aggregate per-battle rows into `Cells`.

    Args:
        model_a, model_b: model names (or, with `models`, integer indices) per battle.
        winner: "model_a", "model_b", "tie" or "tie (bothbad)" per battle (or codes 0/1/2).
        models: fixed model list and order; default is the sorted set of names seen.
        weights: optional non-negative weight per battle (e.g. inverse sampling
            probability, see `inverse_probability_weights`).

    Battles of a model against itself are dropped. Vectorised: 1.5M rows take
    well under a second, most of it mapping names to indices."""
    names, ia, ib = factorize_models(model_a, model_b, models)
    codes = outcome_codes(winner)
    if codes.shape != ia.shape:
        raise ValueError("winner must have one entry per battle")
    w = _weights(weights, ia.size)
    n = len(names)
    key = (ia * n + ib) * 3 + codes
    if n > _DENSE_MODELS:
        return _aggregate_sparse(names, key, w)
    # count per ordered pair and raw outcome, then fold (a, b) and (b, a) together in
    # the small n x n x 3 space instead of canonicalising every row
    raw = np.bincount(key, minlength=n * n * 3).astype(np.float64).reshape(n, n, 3)
    counts_m = _fold(raw)
    if w is None:
        i, j = np.nonzero(counts_m.sum(axis=2))
        counts = counts_m[i, j]
        return Cells(names, i, j, counts, counts, counts)
    weights_m = _fold(np.asarray(np.bincount(key, w, n * n * 3), np.float64).reshape(n, n, 3))
    weights_sq = np.asarray(np.bincount(key, w * w, n * n * 3), np.float64)
    weights_sq_m = _fold(weights_sq.reshape(n, n, 3))
    i, j = np.nonzero(counts_m.sum(axis=2))
    return Cells(names, i, j, counts_m[i, j], weights_m[i, j], weights_sq_m[i, j])


def _aggregate_sparse(names: tuple[str, ...], key: IntArray, w: FloatArray | None) -> Cells:
    """`aggregate_battles` for many models: compress the keys with np.unique first."""
    n = len(names)
    uniq, inverse = np.unique(key, return_inverse=True)
    outcome = uniq % 3

    def columns(values: FloatArray | None) -> FloatArray:
        sums = np.bincount(inverse, values, uniq.size).astype(np.float64)
        out = np.zeros((uniq.size, 3))
        out[np.arange(uniq.size), outcome] = sums
        return out

    ia, ib = (uniq // 3) // n, (uniq // 3) % n
    lo, hi, cols = _canonical(ia, ib, columns(None))
    if w is None:
        return _build(names, lo, hi, cols, None)
    _, _, wc = _canonical(ia, ib, columns(w))
    _, _, w2c = _canonical(ia, ib, columns(w * w))
    return _build(names, lo, hi, cols, (wc, w2c))


def _fold(raw: FloatArray) -> FloatArray:
    """Upper-triangular (i < j) totals: i won, j won, tie, from per-ordered-pair
    counts of (a won, b won, tie). The diagonal (self-battles) is dropped."""
    out = np.zeros_like(raw)
    out[..., WIN_I] = raw[..., 0] + raw[..., 1].T
    out[..., WIN_J] = raw[..., 1] + raw[..., 0].T
    out[..., TIE] = raw[..., 2] + raw[..., 2].T
    upper = np.triu(np.ones(raw.shape[:2], dtype=bool), k=1)
    out[~upper] = 0.0
    return out


def cells_from_pair_counts(
    model_a: ArrayLike,
    model_b: ArrayLike,
    wins_a: ArrayLike,
    wins_b: ArrayLike,
    ties: ArrayLike,
    *,
    models: Sequence[str] | None = None,
    weights: ArrayLike | None = None,
) -> Cells:
    """Build `Cells` from stored per-pair counts (one row per ordered or unordered pair).

    Rows for (a, b) and (b, a) are merged; `ties` holds both kinds of tie.
    `weights`, if given, is a per-row weight applied to every battle of that row
    (e.g. the inverse of the pair's sampling probability)."""
    names, ia, ib = factorize_models(model_a, model_b, models)
    cols = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in (wins_a, wins_b, ties)], axis=1)
    if cols.shape[0] != ia.size:
        raise ValueError("count columns must have one entry per row")
    if not np.isfinite(cols).all() or (cols < 0).any():
        raise ValueError("counts must be finite and non-negative")
    w = _weights(weights, ia.size)
    lo, hi, cols = _canonical(ia, ib, cols)
    if w is None:
        return _build(names, lo, hi, cols, None)
    return _build(names, lo, hi, cols, (cols * w[:, None], cols * (w * w)[:, None]))


def drop_ties(cells: Cells) -> Cells:
    """The same cells with every tie removed (the "no ties" category)."""

    def strip(a: FloatArray) -> FloatArray:
        out = a.copy()
        out[:, TIE] = 0.0
        return out

    counts = strip(cells.counts)
    keep = counts.sum(axis=1) > 0
    if not cells.is_weighted:
        c = counts[keep]
        return Cells(cells.models, cells.i[keep], cells.j[keep], c, c, c)
    return Cells(
        cells.models,
        cells.i[keep],
        cells.j[keep],
        counts[keep],
        strip(cells.weights)[keep],
        strip(cells.weights_sq)[keep],
    )
