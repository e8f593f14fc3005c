"""What the eval cache keys hold (issue 14): a verdict is reused only under the same judge settings
and the same prompt (reference and category included); an aborted answer is never stored."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from app.engines.base import Delta, GenerationRequest
from app.eval.runs import run_pairwise, run_single
from tests.eval.helpers import RuleEngine, answers_with, eval_context, judge_rule, suite

PAIR = suite('{"id": "p1", "turns": ["Name a prime number."]}')


class TruncatingJudge(RuleEngine):
    """A judge whose reply is cut before its verdict when max_tokens is under 100."""

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        async for delta in super().generate(request):
            if request.max_tokens is not None and request.max_tokens < 100:
                yield Delta("Let me think about both answers", delta.prompt_tokens, 6, "length")
            else:
                yield delta


async def test_a_verdict_cut_short_is_not_reused_at_a_larger_max_tokens(tmp_path: Path) -> None:
    models = {"alpha": RuleEngine(answers_with("GOOD answer")), "beta": RuleEngine(answers_with("plain"))}
    async with eval_context(
        tmp_path / "a.db", {**models, "judge": TruncatingJudge(judge_rule)}, judge_max_tokens=64
    ) as ctx:
        short = await run_pairwise(ctx, PAIR, ["alpha"], "judge", "beta")
    assert (short.tally.parse_failures, short.tally.pairs) == (2, 0)

    judge = TruncatingJudge(judge_rule)
    async with eval_context(tmp_path / "a.db", {**models, "judge": judge}, judge_max_tokens=1024) as ctx:
        full = await run_pairwise(ctx, PAIR, ["alpha"], "judge", "beta")
    assert (full.tally.verdicts_cached, full.tally.judge_replies, full.tally.parse_failures) == (0, 2, 0)
    assert full.win_rates["alpha"]["wins"] == 1 and len(judge.prompts) == 2

    # the same settings again: the parse failures are cached, and counted again on resume
    async with eval_context(
        tmp_path / "a.db", {**models, "judge": TruncatingJudge(judge_rule)}, judge_max_tokens=64
    ) as ctx:
        again = await run_pairwise(ctx, PAIR, ["alpha"], "judge", "beta")
    assert (again.tally.verdicts_cached, again.tally.judge_replies, again.tally.parse_failures) == (2, 0, 2)


async def test_an_edited_reference_or_category_is_graded_anew(tmp_path: Path) -> None:
    # the rule judge grades 2 + 4 per GOOD in what it reads, the reference included
    line = '{{"id": "m1", "category": "{cat}", "turns": ["What is 6 x 7?"], "reference": "{ref}"}}'
    models = {"alpha": RuleEngine(answers_with("42"))}

    async def grade(category: str, reference: str) -> tuple[float, int, int]:
        judge = RuleEngine(judge_rule)
        async with eval_context(tmp_path / "a.db", {**models, "judge": judge}) as ctx:
            result = await run_single(ctx, suite(line.format(cat=category, ref=reference)), ["alpha"], "judge")
        return result.scores["alpha"]["mean"], result.tally.verdicts_cached, result.tally.answers_cached

    assert await grade("math", "42") == (2.0, 0, 0)
    assert await grade("math", "42") == (2.0, 1, 1)
    assert await grade("math", "42 GOOD") == (6.0, 0, 1)  # same turns: the answer is reused, the grade is not
    assert await grade("writing", "42 GOOD") == (2.0, 0, 1)  # writing is graded without its reference


class AbortingModel(RuleEngine):
    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        async for delta in super().generate(request):
            yield Delta(delta.text[:3], delta.prompt_tokens, 1, "abort")


async def test_an_aborted_answer_is_a_failure_and_is_not_stored(tmp_path: Path) -> None:
    judge = RuleEngine(judge_rule)
    async with eval_context(tmp_path / "a.db", {"alpha": AbortingModel(answers_with("GOOD")), "judge": judge}) as ctx:
        result = await run_single(ctx, PAIR, ["alpha"], "judge")
    assert (result.tally.answer_failures, result.tally.answers) == (1, 0) and judge.prompts == []
    conn = sqlite3.connect(tmp_path / "a.db")
    try:
        assert conn.execute("SELECT count(*) FROM eval_answers").fetchone()[0] == 0
    finally:
        conn.close()

    async with eval_context(tmp_path / "a.db", {"alpha": RuleEngine(answers_with("GOOD")), "judge": judge}) as ctx:
        result = await run_single(ctx, PAIR, ["alpha"], "judge")
    assert (result.tally.answer_failures, result.tally.answers_cached, result.scores["alpha"]["mean"]) == (0, 0, 6.0)
