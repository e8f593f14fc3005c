"""Vote-level leaderboard options as pure functions: prompt cap, voter filter and
inverse-probability weights turn individual votes into (possibly weighted) pair counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.rating.cells import Cells, cells_from_pair_counts
from app.rating.sampling import cap_repeated_prompts, inverse_probability_weights
from app.rating.voters import flag_anomalous_voters


@dataclass(frozen=True)
class Counts:
    """Stored pair counts of one category: parallel lists, one entry per pair."""

    model_a: list[str]
    model_b: list[str]
    wins_a: list[float]  # counts, or sums of weights when votes are weighted
    wins_b: list[float]
    ties: list[float]

    @property
    def total(self) -> int:
        return round(sum(self.wins_a) + sum(self.wins_b) + sum(self.ties))

    def cells(self) -> Cells:
        return cells_from_pair_counts(self.model_a, self.model_b, self.wins_a, self.wins_b, self.ties)


@dataclass(frozen=True)
class Options:
    """Leaderboard options that need the individual votes rather than the pair counts."""

    inverse_probability: bool = False  # weight each vote by 1 / P(its pair was drawn)
    max_per_prompt: int = 0  # keep at most this many votes per identical prompt (0: all)
    filter_voters: bool = False  # drop voters flagged by the Chatbot Arena paper's test

    @property
    def active(self) -> bool:
        return self.inverse_probability or self.max_per_prompt > 0 or self.filter_voters


@dataclass(frozen=True)
class VoteRows:
    model_a: list[str]
    model_b: list[str]
    winner: list[str]
    pair_prob: list[float]
    voter: list[str]
    prompt: list[str]


def apply_options(rows: VoteRows, options: Options) -> tuple[Counts, dict[str, int]]:
    """Filter and weight the votes, then aggregate them into (possibly weighted) counts."""
    n = len(rows.winner)
    keep = np.ones(n, dtype=bool)
    report = {"votes": n, "dropped_repeated_prompts": 0, "dropped_anomalous_voters": 0, "flagged_voters": 0}
    if options.max_per_prompt > 0 and n:
        capped = cap_repeated_prompts(np.array(rows.prompt, dtype=object), options.max_per_prompt)
        report["dropped_repeated_prompts"] = int((keep & ~capped).sum())
        keep &= capped
    if options.filter_voters and n:
        voters = flag_anomalous_voters(rows.voter, rows.model_a, rows.model_b, rows.winner)
        mask = voters.keep_mask(rows.voter)
        report["flagged_voters"] = len(voters.flagged_users())
        report["dropped_anomalous_voters"] = int((keep & ~mask).sum())
        keep &= mask
    weights = (
        inverse_probability_weights(np.array(rows.pair_prob, dtype=float))
        if options.inverse_probability
        else np.ones(n)
    )
    tallies: dict[tuple[str, str], list[float]] = {}
    for i in np.flatnonzero(keep).tolist():
        a, b, winner = rows.model_a[i], rows.model_b[i], rows.winner[i]
        if a > b:
            a, b = b, a
            winner = {"model_a": "model_b", "model_b": "model_a"}.get(winner, winner)
        cell = tallies.setdefault((a, b), [0.0, 0.0, 0.0])
        cell[{"model_a": 0, "model_b": 1}.get(winner, 2)] += float(weights[i])
    pairs = list(tallies.items())
    counts = Counts(
        [p[0][0] for p in pairs],
        [p[0][1] for p in pairs],
        [p[1][0] for p in pairs],
        [p[1][1] for p in pairs],
        [p[1][2] for p in pairs],
    )
    report["votes_used"] = int(keep.sum())
    return counts, report
