"""Asking a judge model: one pairwise comparison or one 1-10 grade.

The judge reads a template filled with the conversations, labelled "User" and "Assistant A/B"
(never a model's name), answers greedily at eval priority, and its reply is parsed strictly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.engines.base import ChatMessage
from app.eval.context import EvalContext, generate_text
from app.eval.templates import Template, load_template, render_pairwise, render_single
from app.eval.verdicts import parse_pairwise, parse_score, winner


@dataclass(frozen=True)
class Verdict:
    judge: str
    template_hash: str
    raw: str  # the judge's whole reply
    verdict: str | None  # A>>B | A>B | A=B | B>A | B>>A; None when the reply did not parse
    score: float | None = None  # a single grade, 1-10

    @property
    def ok(self) -> bool:
        return self.verdict is not None or self.score is not None

    @property
    def winner(self) -> str | None:
        """``model_a`` (Assistant A) / ``model_b`` / ``tie``, or None when it did not parse."""
        return winner(self.verdict) if self.verdict is not None else None


def _texts(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def judge_settings(ctx: EvalContext) -> dict[str, Any]:
    """The judge's generation settings: greedy, at most ``ctx.judge_max_tokens`` (part of a verdict's key)."""
    return {"temperature": 0.0, "top_p": 1.0, "max_tokens": ctx.judge_max_tokens}


async def ask(ctx: EvalContext, judge: str, text: str) -> str:
    settings = judge_settings(ctx)
    out = await generate_text(ctx, judge, [ChatMessage("user", text)], **settings)
    return out.text


async def judge_pair(
    ctx: EvalContext,
    judge: str,
    prompt_turns: str | Sequence[str],
    answer_a: str | Sequence[str],
    answer_b: str | Sequence[str],
    template: Template | None = None,
    reference: Sequence[str] = (),
) -> Verdict:
    """One order of one comparison: ``answer_a`` shown as Assistant A, ``answer_b`` as B (one
    text per turn, or one text for a single turn)."""
    template = template or load_template("pairwise", ctx.templates)
    text = render_pairwise(template, _texts(prompt_turns), _texts(answer_a), _texts(answer_b), reference)
    raw = await ask(ctx, judge, text)
    return Verdict(judge, template.sha256, raw, parse_pairwise(raw))


async def judge_single(
    ctx: EvalContext,
    judge: str,
    prompt_turns: str | Sequence[str],
    answers: str | Sequence[str],
    template: Template | None = None,
    reference: Sequence[str] = (),
) -> Verdict:
    """A 1-10 grade of one model's answers (against ``reference`` when given: single_ref.txt)."""
    template = template or load_template("single_ref" if reference else "single", ctx.templates)
    text = render_single(template, _texts(prompt_turns), _texts(answers), reference)
    raw = await ask(ctx, judge, text)
    return Verdict(judge, template.sha256, raw, None, parse_score(raw))
