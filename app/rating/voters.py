"""Anomalous-voter filter after Chiang et al. (2024), "Chatbot Arena", Section 5.1.

For each vote H' of a user on an action A' (the pair of models shown), compare it
with the historical votes H_A' on that pair from everyone else:

    p = (1 + #{h in H_A' : h >= H'}) / (|H_A'| + 1)                      (eq. 10)

which is a valid p-value when H' is exchangeable with H_A'. The paper writes
h >= H' on a rating scale; here each vote is scored by how unusual its outcome
is on that pair (fewer votes with that outcome = more unusual, counting the
vote itself), and "h >= H'" reads "h is at least as unusual as H'". Any such
score keeps the p-value valid; this one catches a voter who goes against the
crowd in either direction, and does not depend on which side a model sat.

Eq. 10 counts every vote exactly as unusual as H' in full, so on the three
possible outcomes of a vote the p-value is conservative (the most common outcome
gets p = 1). `randomized=True` (not in the paper) counts those ties with a
uniform random weight, which makes p exactly uniform under the null and gives
the combination below much more power; the default is eq. 10 as printed.

Per user, after their j-th vote, Fisher's combination M_j = -2 sum_{i<=j} log p_i
is chi-squared with 2j degrees of freedom under the null. At 5 checkpoints j
drawn at random from 1..100 (fewer if the user has fewer votes) the user is
flagged when M_j >= chi2_{2j, 1 - alpha/5}: a Bonferroni correction over the
checkpoints. Equivalently the user's p-value is min(1, 5 * min_j P(chi2_{2j} >= M_j))
and the user is flagged when it is <= alpha. Optionally (`across_users="bh"`,
not in the paper) the per-user p-values are Benjamini-Hochberg adjusted across
users, which bounds the share of honest users among those flagged.

Votes are taken in the order given (oldest first); "everyone else" is all other
users' votes in the data, whatever their time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.rating.cells import factorize_models, outcome_codes
from app.rating.numerics import BoolArray, FloatArray


def vote_p_values(
    user: ArrayLike,
    model_a: ArrayLike,
    model_b: ArrayLike,
    winner: ArrayLike,
    *,
    randomized: bool = False,
    seed: int = 0,
) -> FloatArray:
    """Per-vote conformal p-values (eq. 10) against all other users' votes on the pair.

    With `randomized`, votes exactly as unusual as this one (the vote included)
    count with a uniform random weight (numpy Generator seeded by `seed`) instead
    of fully: the p-value is then exactly uniform under the null rather than
    conservative, which gives Fisher's combination far more power on the few
    possible outcomes of a vote. Eq. 10 as printed is `randomized=False`."""
    _, ia, ib = factorize_models(model_a, model_b)
    codes = outcome_codes(winner).astype(np.intp)
    users = _user_codes(user, ia.size)
    n = int(max(ia.max(initial=-1), ib.max(initial=-1))) + 1
    swap = ia > ib
    pair = np.where(swap, ib, ia) * n + np.where(swap, ia, ib)
    outcome = np.where(swap & (codes < 2), 1 - codes, codes)  # canonical side
    pairs, pair_idx = np.unique(pair, return_inverse=True)
    everyone = np.bincount(pair_idx * 3 + outcome, minlength=pairs.size * 3).reshape(-1, 3)
    user_pair = users.astype(np.int64) * pairs.size + pair_idx
    groups, group_idx = np.unique(user_pair, return_inverse=True)
    own = np.bincount(group_idx * 3 + outcome, minlength=groups.size * 3).reshape(-1, 3)
    history = (everyone[pair_idx] - own[group_idx]).astype(np.float64)  # others' votes
    rows = np.arange(ia.size)
    augmented = history.copy()
    augmented[rows, outcome] += 1.0  # the vote itself is in the exchangeable bag
    own_count = augmented[rows, outcome][:, None]
    if not randomized:
        as_unusual = augmented <= own_count
        p: FloatArray = (1.0 + (history * as_unusual).sum(axis=1)) / (history.sum(axis=1) + 1.0)
        return p
    more = (history * (augmented < own_count)).sum(axis=1)
    same = own_count[:, 0]  # others with this outcome, plus the vote itself
    u = np.random.default_rng(seed).random(ia.size)
    p_rand: FloatArray = (more + u * same) / (history.sum(axis=1) + 1.0)
    return np.maximum(p_rand, np.finfo(np.float64).tiny)


def _user_codes(user: ArrayLike, size: int) -> NDArray[np.intp]:
    arr = np.asarray(user)
    if arr.shape != (size,):
        raise ValueError("user must have one entry per vote")
    lookup: dict[Any, int] = {}
    return np.fromiter((lookup.setdefault(u, len(lookup)) for u in arr.tolist()), np.intp, size)


def chi2_sf_even(x: float, dof: int) -> float:
    """P(chi2 with even `dof` >= x), exactly: exp(-x/2) sum_{k<dof/2} (x/2)^k / k!."""
    if dof <= 0 or dof % 2:
        raise ValueError("dof must be a positive even number")
    if x <= 0.0:
        return 1.0
    half = x / 2.0
    logs = [k * math.log(half) - math.lgamma(k + 1) - half for k in range(dof // 2)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


@dataclass(frozen=True, eq=False)
class VoterReport:
    """Result of `flag_anomalous_voters`.

    Attributes:
        users: user ids in first-seen order.
        votes: votes per user.
        p_value: per-user p-value, Bonferroni over that user's checkpoints.
        adjusted: p-value after the across-user correction (= p_value for "none").
        flagged: adjusted <= alpha.
        alpha: the level used.
    """

    users: tuple[Any, ...]
    votes: NDArray[np.int64]
    p_value: FloatArray
    adjusted: FloatArray
    flagged: BoolArray
    alpha: float

    def flagged_users(self) -> tuple[Any, ...]:
        """Ids of flagged users."""
        return tuple(u for u, f in zip(self.users, self.flagged.tolist(), strict=True) if f)

    def keep_mask(self, user: ArrayLike) -> BoolArray:
        """Mask over battles: True for votes by users that were not flagged."""
        bad = set(self.flagged_users())
        return np.fromiter((u not in bad for u in np.asarray(user).tolist()), bool)


def benjamini_hochberg(p: FloatArray) -> FloatArray:
    """BH-adjusted p-values (q-values), same order as `p`."""
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def flag_anomalous_voters(
    user: ArrayLike,
    model_a: ArrayLike,
    model_b: ArrayLike,
    winner: ArrayLike,
    *,
    alpha: float = 0.1,
    checkpoints: int = 5,
    horizon: int = 100,
    across_users: str = "none",
    randomized: bool = False,
    seed: int = 0,
) -> VoterReport:
    """Flag users whose votes disagree with everyone else's more than chance allows.

    Args:
        user, model_a, model_b, winner: one entry per vote, oldest first.
        alpha: significance level (the paper reports 0.1 and 0.3).
        checkpoints: how many vote counts j to test per user (5 in the paper).
        horizon: checkpoints are drawn from 1..horizon (100 in the paper).
        across_users: "none" (the paper) or "bh" (Benjamini-Hochberg across users).
        randomized: randomized tie-breaking in the per-vote p-values (see
            `vote_p_values`); False is eq. 10 as printed.
        seed: seeds the random checkpoints and tie-breaking (numpy Generator).
    """
    if across_users not in ("none", "bh"):
        raise ValueError('across_users must be "none" or "bh"')
    if not 0.0 < alpha < 1.0 or checkpoints < 1 or horizon < 1:
        raise ValueError("need 0 < alpha < 1, checkpoints >= 1, horizon >= 1")
    p = vote_p_values(user, model_a, model_b, winner, randomized=randomized, seed=seed + 1)
    arr = np.asarray(user)
    users = tuple(dict.fromkeys(arr.tolist()))
    codes = _user_codes(arr, arr.size)
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")  # keeps each user's votes in time order
    bounds = np.searchsorted(codes[order], np.arange(len(users) + 1))
    log_p = np.log(p[order])
    per_user = np.ones(len(users))
    votes = np.diff(bounds).astype(np.int64)
    for u in range(len(users)):
        seq = log_p[bounds[u] : bounds[u + 1]]
        limit = min(horizon, seq.size)
        picks = np.sort(rng.choice(np.arange(1, limit + 1), size=min(checkpoints, limit), replace=False))
        fisher = -2.0 * np.cumsum(seq[:limit])
        tail = min(chi2_sf_even(float(fisher[j - 1]), 2 * int(j)) for j in picks)
        per_user[u] = min(1.0, picks.size * tail)
    adjusted = benjamini_hochberg(per_user) if across_users == "bh" else per_user.copy()
    return VoterReport(users, votes, per_user, adjusted, adjusted <= alpha, alpha)
