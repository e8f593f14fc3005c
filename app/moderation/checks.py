"""What every kind of check shares: its verdict, its failure, and the shape of a check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.engines.base import Image
from app.settings import MODERATION_KINDS

KINDS = MODERATION_KINDS


@dataclass(frozen=True)
class Verdict:
    """A check's answer: ``flagged`` with a reason for the log (never shown to the visitor)."""

    flagged: bool
    reason: str = ""


PASS = Verdict(False)


class CheckFailed(Exception):
    """A check could not decide (endpoint down, timeout, an answer that does not parse)."""


class Check(Protocol):
    """One kind of check. ``texts`` are the prompt's non-empty texts; ``images`` its images."""

    name: str

    async def check(self, texts: Sequence[str], images: Sequence[Image]) -> Verdict: ...

    async def close(self) -> None: ...


def excerpt(texts: Sequence[str], images: Sequence[Image], limit: int = 200) -> str:
    """A short, one-line excerpt of what was checked, for the log: text cut at ``limit``, images by hash."""
    text = " ".join(" ".join(texts).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if images:
        text += (" " if text else "") + " ".join(f"[image {i.sha256[:12]}]" for i in images)
    return text
