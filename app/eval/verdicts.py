"""Strict verdict parsers: a judge's reply gives one verdict or none. Never a guess.

Pairwise replies carry one of ``[[A>>B]] [[A>B]] [[A=B]] [[B>A]] [[B>>A]]`` (Arena-Hard's labels);
single grades carry ``[[N]]`` with N from 1 to 10. A reply with no label, with two different
labels, or with a grade out of range did not parse; the same label repeated is one verdict.
"""

from __future__ import annotations

import re

PAIRWISE = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
_PAIR_LABEL = re.compile(r"\[\[\s*(A>>B|A>B|A=B|B>A|B>>A)\s*\]\]")
_SCORE_LABEL = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
# The preference for Assistant A that each label states, strong wins doubled.
PREFERENCE = {"A>>B": 2, "A>B": 1, "A=B": 0, "B>A": -1, "B>>A": -2}


def parse_pairwise(reply: str) -> str | None:
    found = set(_PAIR_LABEL.findall(reply))
    return found.pop() if len(found) == 1 else None


def parse_score(reply: str) -> float | None:
    found = {float(x) for x in _SCORE_LABEL.findall(reply)}
    if len(found) != 1:
        return None
    score = found.pop()
    return score if 1.0 <= score <= 10.0 else None


def swapped(verdict: str) -> str:
    """The same verdict with the two sides' labels exchanged: A>B read from B's side is B>A."""
    return PAIRWISE[len(PAIRWISE) - 1 - PAIRWISE.index(verdict)]


def winner(verdict: str) -> str:
    """``model_a`` / ``model_b`` / ``tie`` for a verdict about (A, B)."""
    preference = PREFERENCE[verdict]
    return "model_a" if preference > 0 else "model_b" if preference < 0 else "tie"


def combine(first: str | None, second: str | None) -> str | None:
    """Both orders' verdicts about one pair, the second read with the sides swapped back
    (``first`` judged X as A and Y as B; ``second`` judged Y as A and X as B). The winner when both
    orders name the same one, else a tie (inconsistent verdicts count as ties); None when either
    order did not parse."""
    if first is None or second is None:
        return None
    a, b = winner(first), winner(swapped(second))
    return a if a == b else "tie"
