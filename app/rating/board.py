"""One leaderboard query, end to end and pure: the votes in, the fitted boards out.

A :class:`Query` is validated and bounded when it is made (so it is safe as a cache key).
:func:`fit_board` applies the vote-level options once and feeds the same selected, weighted
votes to the plain fit and, when asked, to the style-controlled fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.errors import Invalid, shown
from app.rating.cells import Cells
from app.rating.leaderboard import Leaderboard, compute_leaderboard, compute_style_leaderboard
from app.rating.options import Counts, Options, VoteRows, options_block, select_rows, select_votes, selected_cells

CI_KINDS = ("sandwich", "bootstrap")
MODES = ("anony", "judge")  # the human board, and a judge's board (category "judge:<model id>")
MAX_ROUNDS = 1000
CATEGORY_MIN_VOTES = 5  # within a category, models with fewer votes are hidden
PROVISIONAL_VOTES = 30  # models with fewer votes in overall are marked provisional


@dataclass(frozen=True)
class Query:
    """What a visitor asked for, validated; hashable, so it keys the cache."""

    category: str = "overall"
    style_control: bool = False
    ci: str = "sandwich"
    anchor: tuple[str, float] | None = None
    rounds: int = 100
    options: Options = field(default_factory=Options)
    provisional_votes: int = PROVISIONAL_VOTES
    mode: str = "anony"  # the battles' mode: anony (the human board) or judge (a judge's board)

    @property
    def needs_votes(self) -> bool:
        """Whether the individual votes are needed (else the stored pair counts do)."""
        return self.style_control or self.options.active


def parse_anchor(text: str | None) -> tuple[str, float] | None:
    """``MODEL=SCORE`` -> (model, score)."""
    if not text:
        return None
    model, sep, score = text.rpartition("=")
    try:
        value = float(score)
    except ValueError:
        value = float("nan")
    if not sep or not model or not np.isfinite(value):
        raise Invalid(f"anchor must look like MODEL=SCORE, got {shown(text)!r}", param="anchor")
    return model, value


def make_query(
    *,
    category: str = "overall",
    style_control: bool = False,
    ci: str = "sandwich",
    anchor: str | None = None,
    rounds: int = 100,
    options: Options | None = None,
    provisional_votes: int = PROVISIONAL_VOTES,
    mode: str = "anony",
) -> Query:
    """A bounded :class:`Query`, or :class:`Invalid` naming the bad parameter."""
    if ci not in CI_KINDS:
        raise Invalid(f"ci must be one of {', '.join(CI_KINDS)}", param="ci")
    if not 1 <= rounds <= MAX_ROUNDS:
        raise Invalid(f"rounds must be between 1 and {MAX_ROUNDS}", param="rounds")
    if len(category) > 100:
        raise Invalid("category is too long", param="category")
    options = options or Options()
    if options.max_per_prompt < 0:
        raise Invalid("max_per_prompt must be 0 or more", param="max_per_prompt")
    if mode not in MODES:
        raise Invalid(f"mode must be one of {', '.join(MODES)}", param="mode")
    anchor_at = parse_anchor(anchor)
    return Query(category, style_control, ci, anchor_at, rounds, options, max(0, provisional_votes), mode)


def check_anchor(query: Query, known: Sequence[str] | set[str]) -> None:
    if query.anchor is not None and query.anchor[0] not in known:
        raise Invalid(f"anchor names an unknown model: {shown(query.anchor[0])!r}", param="anchor")


@dataclass(frozen=True, eq=False)
class BoardData:
    """What a fit reads: stored pair counts, individual votes when options or style control need
    them, or cells already aggregated (a battle file's overall board)."""

    counts: Counts | None = None
    votes: VoteRows | None = None
    cells: Cells | None = None

    def votes_per_model(self) -> dict[str, int]:
        """Votes per model in these data (all of them, before any option)."""
        if self.votes is not None:
            out: dict[str, int] = {}
            for name in (*self.votes.model_a, *self.votes.model_b):
                out[name] = out.get(name, 0) + 1
            return out
        cells = self.cells if self.cells is not None else self.counts.cells() if self.counts else None
        return {} if cells is None else dict(zip(cells.models, cells.votes().tolist(), strict=True))


@dataclass(frozen=True, eq=False)
class Fitted:
    """The boards a query gives: ``board`` (style-controlled when asked), the plain one beside
    it, the options block that describes the votes used, and a notice for readers."""

    board: Leaderboard | None
    plain: Leaderboard | None
    options: dict[str, Any]
    votes_used: int
    notice: str = ""


STYLE_FAILED = (
    "Style control could not be fitted on these votes (the style features do not vary "
    "independently of the models yet); showing the plain ranking."
)
PRIOR_USED = (
    "Too few votes for exact scores: some model has only wins or only losses, or some models "
    "never met. Scores use a weak prior (a standard normal on each model's strength) and the "
    "intervals show how little is known."
)


def _cells(data: BoardData, query: Query) -> tuple[Cells, dict[str, Any], Any]:
    if data.votes is None:
        cells = data.cells if data.cells is not None else (data.counts or Counts([], [], [], [], [])).cells()
        total = cells.total_battles
        return cells, options_block(query.options, total, total), None
    selection = select_votes(data.votes, query.options)
    return selected_cells(data.votes, selection), selection.report, selection


def fit_board(data: BoardData, query: Query) -> Fitted:
    """The plain fit and, with style control, the style-controlled fit, on the same votes."""
    cells, report, selection = _cells(data, query)
    used = cells.total_battles
    if used == 0:
        return Fitted(None, None, report, 0)
    min_votes = 0 if query.category == "overall" or query.mode != "anony" else CATEGORY_MIN_VOTES
    plain = compute_leaderboard(cells, anchor=query.anchor, ci=query.ci, rounds=query.rounds, min_votes=min_votes)
    notice = "" if plain.info.identifiable else PRIOR_USED
    if not query.style_control or data.votes is None:
        return Fitted(plain, None, report, used, notice)
    kept = select_rows(data.votes, selection)
    try:
        style = compute_style_leaderboard(
            kept.model_a,
            kept.model_b,
            kept.winner,
            np.array(kept.features_a, dtype=float).reshape(len(kept), -1),
            np.array(kept.features_b, dtype=float).reshape(len(kept), -1),
            weights=selection.weights,
            anchor=query.anchor,
            min_votes=min_votes,
        )
    except np.linalg.LinAlgError:
        return Fitted(plain, None, report, used, STYLE_FAILED)
    notice = "" if style.info.identifiable else PRIOR_USED
    return Fitted(style, plain, report, used, notice)


def provisional(votes: Mapping[str, int], threshold: int) -> set[str]:
    """Models with fewer than ``threshold`` votes (in overall)."""
    return {m for m, n in votes.items() if n < threshold}
