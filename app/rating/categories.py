"""Leaderboard categories as pure predicates over battle metadata.

Categories (names as used by the leaderboard):
- "overall": every battle;
- "language:<code>": battles whose prompt language is <code>, an ISO 639-1 code ("en"),
  whether detected from a live prompt or mapped from an import's name ("English");
- "multi_turn": conversations with more than one turn;
- "long_prompt": prompts of at least `LONG_PROMPT_TOKENS` tokens (500), counted by the
  answering model's tokenizer (stored with every answer). Only when no count is
  stored (an import without one) it is estimated as characters / 4;
- "coding": a plain heuristic: code fences or code-shaped lines, or a programming
  language name or term (see `is_coding`);
- "no_ties": battles not ending in a tie of either kind;
- "vision": battles about an image (at least one turn carried one).
Each category gets its own fit (see `leaderboard.leaderboards_by_category`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.rating.language import UNKNOWN, detect_language, language_code
from app.rating.numerics import BoolArray

LONG_PROMPT_TOKENS = 500
"""A prompt of at least this many tokens is "long"."""

CHARS_PER_TOKEN = 4
"""Fallback token estimate when a prompt's token count is unknown."""

_CODE_SYNTAX = re.compile(
    r"```|~~~|`[^`\n]+`"  # fences and inline code
    r"|^\s*(?:def|fn|func|function)\s+\w+\s*\("  # definitions
    r"|^\s*class\s+\w+\s*[(:{]"
    r"|^\s*(?:import\s+[\w.]+|from\s+[\w.]+\s+import\b|#include\s*[<\"]|package\s+[\w.]+;)"
    r"|\b(?:console\.log|System\.out\.print\w*|printf|println!?)\s*\("
    r"|\w\([^()\n]*\)\s*(?:\{|;|=>)\s*$"  # call or signature ending a line
    r"|==|!=|&&|\|\||::|=>"
    r"|\bSELECT\b.+\bFROM\b",  # SQL, upper case only
    re.MULTILINE,
)
_CODE_TERMS = re.compile(
    r"(?<![\w+#])(?:c\+\+|c#)(?![\w+#])"
    r"|\b(?:python|javascript|typescript|java|golang|kotlin|php|sql|html|css|bash|"
    r"powershell|regex|numpy|pytorch|tensorflow|django|node\.js|docker|kubernetes|github|"
    r"programming|coding|compiler|compile|debug|debugging|stack trace|traceback|segfault|"
    r"source code|code snippet|leetcode|unit tests?|"
    r"(?:write|fix|refactor|optimi[sz]e)\s+(?:a|an|the|this|my)?\s*"
    r"(?:function|script|program|code|class|method|query))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BattleMeta:
    """What the category predicates look at for one battle."""

    winner: str
    language: str | None = None
    turns: int = 1
    prompt: str = ""
    prompt_tokens: int | None = None
    vision: bool = False  # the conversation carried an image


def is_multi_turn(turns: int) -> bool:
    """More than one user turn."""
    return turns > 1


def is_long_prompt(prompt: str, prompt_tokens: int | None = None, *, threshold: int = LONG_PROMPT_TOKENS) -> bool:
    """At least `threshold` tokens (estimated as len(prompt) / 4 when unknown)."""
    tokens = prompt_tokens if prompt_tokens is not None else len(prompt) / CHARS_PER_TOKEN
    return tokens >= threshold


def is_coding(prompt: str) -> bool:
    """Heuristic: code fences or inline code, code-shaped lines (`def f(`,
    `#include <`, `x == y`, a call ending in `{` or `;`), or a programming
    language name or term ("python", "sql", "debug", "write a function")."""
    return _CODE_SYNTAX.search(prompt) is not None or _CODE_TERMS.search(prompt) is not None


def is_tie(winner: str) -> bool:
    """Either kind of tie."""
    return winner in ("tie", "tie (bothbad)")


def language_category(language: str) -> str | None:
    """Category name for a prompt language (a code or an English name); None if unknown."""
    code = language_code(language)
    return f"language:{code}" if code else None


def categories_for(meta: BattleMeta) -> tuple[str, ...]:
    """All categories a battle belongs to ("overall" first)."""
    out = ["overall"]
    language = language_category(meta.language) if meta.language else None
    if language:
        out.append(language)
    if is_multi_turn(meta.turns):
        out.append("multi_turn")
    if is_long_prompt(meta.prompt, meta.prompt_tokens):
        out.append("long_prompt")
    if is_coding(meta.prompt):
        out.append("coding")
    if not is_tie(meta.winner):
        out.append("no_ties")
    if meta.vision:
        out.append("vision")
    return tuple(out)


def battle_categories(
    first_prompt: str,
    turns: int,
    winner: str,
    prompt_tokens: int | None = None,
    *,
    language: str | None = None,
    vision: bool = False,
) -> list[str]:
    """The categories of one vote; the language is guessed from the first prompt unless given
    (an import's name is mapped to its code). ``prompt_tokens``: the first prompt's stored count;
    ``vision``: the battle carried an image."""
    code = language_code(language) if language else detect_language(first_prompt)
    meta = BattleMeta(
        winner,
        language=None if code in (None, UNKNOWN) else code,
        turns=turns,
        prompt=first_prompt,
        prompt_tokens=prompt_tokens,
        vision=vision,
    )
    return list(categories_for(meta))


def category_predicate(category: str) -> Callable[[BattleMeta], bool]:
    """A test for one category that computes only what that category needs."""
    if category == "overall":
        return lambda m: True
    if category.startswith("language:"):
        want = category.split(":", 1)[1]
        return lambda m: bool(m.language) and language_code(m.language) == want
    tests: dict[str, Callable[[BattleMeta], bool]] = {
        "multi_turn": lambda m: is_multi_turn(m.turns),
        "long_prompt": lambda m: is_long_prompt(m.prompt, m.prompt_tokens),
        "coding": lambda m: is_coding(m.prompt),
        "no_ties": lambda m: not is_tie(m.winner),
        "vision": lambda m: m.vision,
    }
    return tests.get(category, lambda m: category in categories_for(m))


def category_mask(metas: Sequence[BattleMeta], category: str) -> BoolArray:
    """Boolean mask of the battles that belong to `category`."""
    return np.fromiter((category in categories_for(m) for m in metas), bool, len(metas))


def category_masks(metas: Sequence[BattleMeta]) -> dict[str, BoolArray]:
    """Masks for every category that at least one battle belongs to."""
    tags = [categories_for(m) for m in metas]
    names = sorted({t for ts in tags for t in ts}, key=lambda c: (c != "overall", c))
    return {c: np.fromiter((c in ts for ts in tags), bool, len(tags)) for c in names}
