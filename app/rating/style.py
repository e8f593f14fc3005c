"""Style features of one Markdown answer, for style control.

Counted per answer when it is stored: answer tokens (given by the engine),
Markdown headers, list items and bold spans. Text inside fenced code blocks
(``` or ~~~) and inline code spans does not count. This is a line-based
heuristic, not a full CommonMark parser: indented code blocks, block quotes and
code spans that cross lines are not special-cased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STYLE_FEATURE_NAMES: tuple[str, ...] = ("tokens", "headers", "list_items", "bold")
"""Order of the style feature columns everywhere in this package."""

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_HEADER = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_BOLD_STARS = re.compile(r"\*\*(?=[^\s*])(.+?)(?<=[^\s*])\*\*")
_BOLD_UNDERSCORES = re.compile(r"(?<![\w])__(?=[^\s_])(.+?)(?<=[^\s_])__(?![\w])")


@dataclass(frozen=True)
class StyleFeatures:
    """Style counts of one answer (or the sum over the answers of a battle side)."""

    tokens: int
    headers: int
    list_items: int
    bold: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        """Values in `STYLE_FEATURE_NAMES` order."""
        return (self.tokens, self.headers, self.list_items, self.bold)

    def __add__(self, other: StyleFeatures) -> StyleFeatures:
        """Sum, for a multi-turn conversation's answers on one side."""
        return StyleFeatures(
            self.tokens + other.tokens,
            self.headers + other.headers,
            self.list_items + other.list_items,
            self.bold + other.bold,
        )


def _prose_lines(text: str) -> list[str]:
    """Lines outside fenced code blocks. An unclosed fence runs to the end."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                fence = m.group(1)
                continue
            out.append(line)
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
            fence = None
    return out


def style_features(markdown_text: str, n_tokens: int) -> StyleFeatures:
    """Count headers, list items and bold spans of an answer; tokens pass through.

    - headers: lines starting with 1-6 `#` then a space or end of line;
    - list items: lines starting with `-`, `*`, `+` or `1.` / `1)` then text
      (thematic breaks like `- - -` or `***` are not items);
    - bold: `**text**` or `__text__` spans, after removing inline code spans.
    Everything inside ``` / ~~~ fences is ignored."""
    if n_tokens < 0:
        raise ValueError("n_tokens must be >= 0")
    headers = list_items = bold = 0
    for line in _prose_lines(markdown_text):
        if _HEADER.match(line):
            headers += 1
        elif _LIST_ITEM.match(line) and not _THEMATIC_BREAK.match(line):
            list_items += 1
        plain = _CODE_SPAN.sub(" ", line)
        bold += len(_BOLD_STARS.findall(plain)) + len(_BOLD_UNDERSCORES.findall(plain))
    return StyleFeatures(int(n_tokens), headers, list_items, bold)
