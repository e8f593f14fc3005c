"""The ``words`` check: a list of blocked words, phrases and regular expressions.

Entries come from ``--moderation-words`` and from a file (``--moderation-words-file``), one a
line; blank lines and lines starting with ``#`` are skipped. A plain entry matches as a whole
word or phrase, case-insensitively (``ass`` does not match ``class``); an entry starting with
``re:`` is a regular expression, also case-insensitive. Text is NFKC-normalized first, so
full-width and other compatibility forms of a letter match too, and Unicode format characters
(category Cf: soft hyphen, zero-width space and joiners) are removed, so ``bad\u200bword`` is
``badword``. The scan runs in a worker thread, off the event loop.

Plain entries made of word characters are looked up in a set, word by word (a phrase as its run
of words), so a long list costs one pass over the prompt; other plain entries (``c++``) and
regular expressions are each a regex search.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from app.engines.base import Image
from app.errors import Invalid
from app.moderation.checks import PASS, Verdict

REGEX_PREFIX = "re:"


def compile_entry(entry: str) -> re.Pattern[str]:
    """One entry as a case-insensitive pattern; ``re:`` entries as written, words on word boundaries."""
    if entry.startswith(REGEX_PREFIX):
        return re.compile(entry[len(REGEX_PREFIX) :], re.IGNORECASE)
    words = r"\s+".join(re.escape(w) for w in unicodedata.normalize("NFKC", entry).split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


def read_entries(path: Path) -> list[tuple[str, str]]:
    """(where, entry) for each entry of a words file; ``where`` is ``FILE:LINE`` for error messages."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"cannot read the moderation words file {path}: {exc}", param="moderation_words_file") from None
    out = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out.append((f"{path}:{number}", entry))
    return out


WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    """NFKC without format characters (category Cf), which are invisible and split words."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def fold(text: str) -> str:
    return normalize(text).casefold()


class WordsCheck:
    name = "words"

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        self.phrases: dict[tuple[str, ...], str] = {}  # plain entries of word characters, as words
        self.patterns: list[tuple[str, re.Pattern[str]]] = []  # the rest
        for where, entry in entries:
            words = tuple(fold(entry).split())
            if not entry.startswith(REGEX_PREFIX) and words and all(WORD.fullmatch(w) for w in words):
                self.phrases.setdefault(words, entry)
                continue
            try:
                self.patterns.append((entry, compile_entry(entry)))
            except re.error as exc:
                raise Invalid(f"moderation words: bad regular expression {entry!r} ({where}): {exc}") from None
        if not self.phrases and not self.patterns:
            raise Invalid(
                "The words check has no entries: set --moderation-words or --moderation-words-file.",
                param="moderation_words",
            )
        self.lengths = sorted({len(p) for p in self.phrases})

    def _phrase(self, text: str) -> str | None:
        words = WORD.findall(fold(text))
        for n in self.lengths:
            for start in range(len(words) - n + 1):
                entry = self.phrases.get(tuple(words[start : start + n]))
                if entry is not None:
                    return entry
        return None

    async def check(self, texts: Sequence[str], images: Sequence[Image]) -> Verdict:
        """Images are not looked at by this kind; the texts are scanned in a worker thread."""
        return await asyncio.to_thread(self.scan, list(texts))

    def scan(self, texts: Sequence[str]) -> Verdict:
        """The verdict for ``texts`` (blocking: a long prompt takes a while)."""
        for text in texts:
            entry = self._phrase(text)
            if entry is not None:
                return Verdict(True, f"matches {entry!r}")
            normal = normalize(text)
            for entry, pattern in self.patterns:
                if pattern.search(normal):
                    return Verdict(True, f"matches {entry!r}")
        return PASS

    async def close(self) -> None:
        pass
