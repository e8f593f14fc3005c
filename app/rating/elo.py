"""Online Elo over battles in time order: an alternative, order-dependent view.

After each battle between a and b with outcome y (1 a won, 0 b won, 1/2 tie):
    E = 1 / (1 + base ** ((R_b - R_a) / scale)),  R_a += k (y - E),  R_b -= k (y - E).
Swapping the sides of a battle gives the same update, so the result does not
depend on which side a model sat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from app.rating.cells import factorize_models, outcome_codes
from app.rating.numerics import FloatArray


@dataclass(frozen=True, eq=False)
class EloRatings:
    """Final online Elo ratings per model (models that never played keep `init`)."""

    models: tuple[str, ...]
    ratings: FloatArray

    def as_dict(self) -> dict[str, float]:
        """Model name to rating."""
        return {m: float(r) for m, r in zip(self.models, self.ratings, strict=True)}


def online_elo(
    model_a: ArrayLike,
    model_b: ArrayLike,
    winner: ArrayLike,
    *,
    models: Sequence[str] | None = None,
    k: float = 4.0,
    base: float = 10.0,
    scale: float = 400.0,
    init: float = 1000.0,
) -> EloRatings:
    """Run Elo updates over battles in the order given (oldest first).

    Args mirror `aggregate_battles`; `k` is the update step (4 as in LMArena's
    online Elo), `base`/`scale`/`init` the rating scale."""
    names, ia, ib = factorize_models(model_a, model_b, models)
    codes = outcome_codes(winner)
    if codes.shape != ia.shape:
        raise ValueError("winner must have one entry per battle")
    y = np.where(codes == 0, 1.0, np.where(codes == 1, 0.0, 0.5)).tolist()
    ratings = [float(init)] * len(names)
    c = math.log(base) / scale
    for a, b, out in zip(ia.tolist(), ib.tolist(), y, strict=True):
        diff = c * (ratings[b] - ratings[a])
        if diff > 0:
            e = math.exp(-diff)
            expected = e / (1.0 + e)
        else:
            expected = 1.0 / (1.0 + math.exp(diff))
        update = k * (out - expected)
        ratings[a] += update
        ratings[b] -= update
    return EloRatings(names, np.array(ratings, dtype=np.float64))
