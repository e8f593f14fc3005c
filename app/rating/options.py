"""Vote-level leaderboard options as pure functions.

Which votes are read is chosen before they get here: a flagged vote (its battle flagged for an
identity leak) is left out of the default board and read only with ``include_flagged``. A prompt
cap and the voter filter then choose which votes count; inverse-probability weighting gives
each kept vote a weight. The result is a :class:`Selection`: the votes kept and their weights,
which go to the rating functions as weights (never folded into the counts), so vote counts stay
counts and the intervals see each vote's weight. The same selection feeds the plain fit, the
style-controlled fit and every category.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.rating.cells import Cells, aggregate_battles, cells_from_pair_counts
from app.rating.numerics import BoolArray, FloatArray
from app.rating.sampling import cap_repeated_prompts, inverse_probability_weights
from app.rating.voters import flag_anomalous_voters


@dataclass(frozen=True)
class Counts:
    """Stored pair counts of one category: parallel lists, one entry per pair."""

    model_a: list[str]
    model_b: list[str]
    wins_a: list[float]
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
    include_flagged: bool = False  # count votes of battles flagged for an identity leak too

    @property
    def active(self) -> bool:
        return self.inverse_probability or self.max_per_prompt > 0 or self.filter_voters or self.include_flagged


@dataclass(frozen=True)
class VoteRows:
    """Individual votes of one category, parallel lists (style features optional)."""

    model_a: list[str]
    model_b: list[str]
    winner: list[str]
    pair_prob: list[float]
    voter: list[str]
    prompt: list[str]
    features_a: list[tuple[int, ...]] = field(default_factory=list)
    features_b: list[tuple[int, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.winner)


@dataclass(frozen=True, eq=False)
class Selection:
    """The votes an option set keeps (a mask over the rows) and their weights (None: all 1)."""

    keep: BoolArray
    weights: FloatArray | None
    report: dict[str, Any]

    @property
    def used(self) -> int:
        return int(self.keep.sum())


def options_block(options: Options, votes: int, used: int) -> dict[str, Any]:
    """The response's ``options``: what was asked and how many votes the scores come from."""
    return {
        "inverse_probability": options.inverse_probability,
        "max_per_prompt": options.max_per_prompt,
        "filter_voters": options.filter_voters,
        "include_flagged": options.include_flagged,
        "votes": votes,
        "dropped_repeated_prompts": 0,
        "dropped_anomalous_voters": 0,
        "flagged_voters": 0,
        "votes_used": used,
        "weighted": options.inverse_probability,
    }


def select_votes(rows: VoteRows, options: Options) -> Selection:
    """Apply the prompt cap and the voter filter, then weight the kept votes.

    Inverse-probability weights are normalised to mean 1 over the kept votes."""
    n = len(rows)
    keep = np.ones(n, dtype=bool)
    report = options_block(options, n, n)
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
    weights = None
    if options.inverse_probability and keep.any():
        weights = inverse_probability_weights(np.asarray(rows.pair_prob, dtype=np.float64)[keep])
    report["votes_used"] = int(keep.sum())
    return Selection(keep, weights, report)


def selected_cells(rows: VoteRows, selection: Selection) -> Cells:
    """The kept votes aggregated into cells: raw counts, and the weights as weights."""
    pick = np.flatnonzero(selection.keep)
    a = np.asarray(rows.model_a, dtype=object)[pick]
    b = np.asarray(rows.model_b, dtype=object)[pick]
    winner = np.asarray(rows.winner, dtype=object)[pick]
    return aggregate_battles(a, b, winner, weights=selection.weights)


def select_rows(rows: VoteRows, selection: Selection) -> VoteRows:
    """Only the kept rows (same order)."""
    idx = np.flatnonzero(selection.keep).tolist()

    def take(values: list[Any]) -> list[Any]:
        return [values[i] for i in idx] if values else []

    return VoteRows(
        take(rows.model_a),
        take(rows.model_b),
        take(rows.winner),
        take(rows.pair_prob),
        take(rows.voter),
        take(rows.prompt),
        take(rows.features_a),
        take(rows.features_b),
    )
