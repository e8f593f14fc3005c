"""Arena's rating library: pure functions over numpy arrays, no I/O, no globals.

Typical use from stored pair counts:

    cells = cells_from_pair_counts(model_a, model_b, wins_a, wins_b, ties)
    board = compute_leaderboard(cells, anchor=None, ci="sandwich")
    board.as_dicts()  # [{"model", "rating", "ci_lower", "ci_upper", "rank_ub", "votes"}, ...]

Modules: `cells` (aggregation), `bt` (Bradley-Terry fit), `intervals` (sandwich,
bootstrap, Rank UB), `elo` (online Elo), `style` / `style_control` (style
features and the style-controlled fit), `matrices`, `categories`, `voters`
(anomalous-voter filter), `sampling` (prompt cap, inverse-probability weights),
`leaderboard` (rows for the app).
"""

from app.rating.bt import LMARENA_ANCHOR, BTFit, FitInfo, fit_bradley_terry
from app.rating.categories import (
    LONG_PROMPT_TOKENS,
    BattleMeta,
    categories_for,
    category_mask,
    category_masks,
    is_coding,
    is_long_prompt,
    is_multi_turn,
)
from app.rating.cells import (
    WINNER_CODES,
    Cells,
    aggregate_battles,
    cells_from_pair_counts,
    drop_ties,
    factorize_models,
    outcome_codes,
)
from app.rating.elo import EloRatings, online_elo
from app.rating.intervals import (
    Intervals,
    bootstrap_intervals,
    rank_upper_bound,
    sandwich_covariance,
    sandwich_intervals,
)
from app.rating.leaderboard import (
    Leaderboard,
    LeaderboardRow,
    compute_leaderboard,
    compute_style_leaderboard,
    hide_below_votes,
    leaderboards_by_category,
)
from app.rating.matrices import battle_count_matrix, predicted_win_rate_matrix, win_rate_matrix
from app.rating.sampling import cap_repeated_prompts, inverse_probability_weights
from app.rating.style import STYLE_FEATURE_NAMES, StyleFeatures, style_features
from app.rating.style_control import StyleFit, fit_style_control, style_design
from app.rating.voters import VoterReport, flag_anomalous_voters, vote_p_values

__all__ = [
    "LMARENA_ANCHOR",
    "LONG_PROMPT_TOKENS",
    "STYLE_FEATURE_NAMES",
    "WINNER_CODES",
    "BTFit",
    "BattleMeta",
    "Cells",
    "EloRatings",
    "FitInfo",
    "Intervals",
    "Leaderboard",
    "LeaderboardRow",
    "StyleFeatures",
    "StyleFit",
    "VoterReport",
    "aggregate_battles",
    "battle_count_matrix",
    "bootstrap_intervals",
    "cap_repeated_prompts",
    "categories_for",
    "category_mask",
    "category_masks",
    "cells_from_pair_counts",
    "compute_leaderboard",
    "compute_style_leaderboard",
    "drop_ties",
    "factorize_models",
    "fit_bradley_terry",
    "fit_style_control",
    "flag_anomalous_voters",
    "hide_below_votes",
    "inverse_probability_weights",
    "is_coding",
    "is_long_prompt",
    "is_multi_turn",
    "leaderboards_by_category",
    "online_elo",
    "outcome_codes",
    "predicted_win_rate_matrix",
    "rank_upper_bound",
    "sandwich_covariance",
    "sandwich_intervals",
    "style_design",
    "style_features",
    "vote_p_values",
    "win_rate_matrix",
]
