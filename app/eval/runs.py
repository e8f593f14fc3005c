"""Eval runs: pairwise against a baseline, MT-bench-style single grading, and tournaments.

Every model answers every prompt (answers cached); the judge sees each pair in both orders and
the pair's verdict is the winner both orders name, else a tie; a reply that does not parse is
counted, never guessed, and leaves that pair without a battle. Each run has a row in ``eval_runs``
with its progress (``done``/``total``) and, once finished, its result as JSON. Verdicts are cached,
so a run started again after a kill continues where it stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from app.engines.base import EngineError
from app.errors import DomainError
from app.eval import store as eval_store
from app.eval.answers import get_answer
from app.eval.context import EvalContext
from app.eval.judge import judge_pair, judge_settings, judge_single
from app.eval.store import Judged, PairRecord, StoredAnswer, verdict_key
from app.eval.suites import Prompt, Suite
from app.eval.templates import Template, load_template, uses_reference
from app.eval.verdicts import combine, swapped, winner
from app.rating import aggregate_battles, compute_leaderboard

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total) steps: answers plus judge replies
FAILURES = (DomainError, EngineError)  # a model or judge that could not answer: counted, the run goes on


@dataclass
class Tally:
    """What a run saw, cached work included, so a resumed run reports the same totals."""

    answers: int = 0
    answers_cached: int = 0
    answer_failures: int = 0
    judge_replies: int = 0  # replies new in this run
    verdicts_cached: int = 0  # replies reused from the cache
    judge_failures: int = 0  # judge generations that failed (retried by the next run)
    parse_failures: int = 0  # replies that held no verdict: counted, never guessed
    pairs: int = 0  # pairs decided in both orders (each a stored battle)
    ties: int = 0  # of those, ties (inconsistent orders included)
    inconsistent: int = 0  # orders that named different winners, counted as ties
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # (X, Y, model_a|model_b|tie)
    scores: dict[str, list[float | None]] = field(default_factory=dict)  # single: grades per model

    def add_pair(self, x: str, y: str, first: str | None, second: str | None) -> None:
        self.parse_failures += (first is None) + (second is None)
        decided = combine(first, second)
        if decided is None or first is None or second is None:
            return
        self.pairs += 1
        self.ties += decided == "tie"
        self.inconsistent += winner(first) != winner(swapped(second))
        self.outcomes.append((x, y, decided))

    def summary(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)}


@dataclass
class RunResult:
    run_id: str
    kind: str
    suite: str
    judge: str
    models: list[str]
    baseline: str
    tally: Tally
    win_rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    board: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "tally"}
        out["tally"] = self.tally.summary()
        return out


class Steps:
    """Progress: ticks to the caller's callback, and to the run's row at most once a second."""

    def __init__(self, ctx: EvalContext, run_id: str, total: int, progress: Progress | None) -> None:
        self.ctx, self.run_id, self.total, self.progress = ctx, run_id, total, progress
        self.done = 0
        self._saved = 0.0
        self._writes: set[asyncio.Future[Any]] = set()

    def tick(self, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)
        now = time.monotonic()
        if now - self._saved >= 1.0 or self.done >= self.total:
            self._saved = now
            write = asyncio.ensure_future(
                self.ctx.store.write(eval_store.update_run(self.run_id, self.done, self.total))
            )
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)

    async def flush(self) -> None:
        await asyncio.gather(*self._writes, return_exceptions=True)
        await self.ctx.store.write(eval_store.update_run(self.run_id, self.done, self.total))


@dataclass
class Run:
    ctx: EvalContext
    kind: str
    suite: Suite
    judge: str
    models: list[str]
    baseline: str
    template: Template
    steps: Steps
    tally: Tally = field(default_factory=Tally)


async def _tracked(run: Run, body: Callable[[Run], Awaitable[None]]) -> RunResult:
    """Record the run's row, run ``body``, store its result (or why it stopped)."""
    ctx = run.ctx
    try:
        await ctx.store.write(
            eval_store.start_run(run.steps.run_id, run.kind, run.suite.name, run.judge, run.models, run.baseline)
        )
        await run.steps.flush()
        await body(run)
    except asyncio.CancelledError:
        await asyncio.shield(ctx.store.write(eval_store.finish_run(run.steps.run_id, "interrupted")))
        raise
    except BaseException as exc:
        await ctx.store.write(eval_store.finish_run(run.steps.run_id, "failed", error=str(exc) or type(exc).__name__))
        raise
    await run.steps.flush()
    result = RunResult(run.steps.run_id, run.kind, run.suite.name, run.judge, run.models, run.baseline, run.tally)
    _fill_result(run, result)
    await ctx.store.write(eval_store.finish_run(run.steps.run_id, "done", result.as_json()))
    return result


def _new_run(
    ctx: EvalContext,
    kind: str,
    suite: Suite,
    judge: str,
    models: Sequence[str],
    baseline: str,
    total: int,
    progress: Progress | None,
    run_id: str | None,
    template: str,
) -> Run:
    if not suite.prompts:
        raise ValueError("the suite has no prompts")
    steps = Steps(ctx, run_id or uuid.uuid4().hex[:16], total, progress)
    return Run(ctx, kind, suite, judge, list(models), baseline, load_template(template, ctx.templates), steps)


# -- answers ----------------------------------------------------------------------------------


async def _answer(run: Run, model: str, prompt: Prompt) -> StoredAnswer | None:
    try:
        answer, cached = await get_answer(run.ctx, model, prompt)
    except FAILURES as exc:
        log.warning("%s could not answer %s: %s", model, prompt.id, exc)
        run.tally.answer_failures += 1
        run.steps.tick()
        return None
    run.tally.answers += 1
    run.tally.answers_cached += cached
    run.steps.tick()
    return answer


def _answer_all(run: Run, models: Sequence[str]) -> dict[tuple[str, str], asyncio.Task[StoredAnswer | None]]:
    return {(m, p.id): asyncio.ensure_future(_answer(run, m, p)) for p in run.suite.prompts for m in models}


# -- pairwise ---------------------------------------------------------------------------------


async def _ask_pair(
    run: Run, prompt: Prompt, a: StoredAnswer, b: StoredAnswer, reference: Sequence[str]
) -> Judged | None:
    key = verdict_key(
        "pairwise",
        run.judge,
        run.suite.name,
        a.key,
        b.key,
        run.template.sha256,
        judge_settings(run.ctx),
        prompt.prompt_hash,
    )
    try:
        v = await judge_pair(run.ctx, run.judge, prompt.turns, a.texts, b.texts, run.template, reference)
    except FAILURES as exc:
        log.warning("judge %s failed on %s: %s", run.judge, prompt.id, exc)
        run.tally.judge_failures += 1
        return None
    finally:
        run.steps.tick()
    run.tally.judge_replies += 1
    return Judged(key, a, b, v.raw, v.verdict)


async def _pair(run: Run, prompt: Prompt, x: str, y: str, answers: dict[tuple[str, str], Any]) -> None:
    ax, ay = await answers[(x, prompt.id)], await answers[(y, prompt.id)]
    if ax is None or ay is None:
        run.steps.tick(2)
        return
    keys = [
        verdict_key(
            "pairwise",
            run.judge,
            run.suite.name,
            s.key,
            t.key,
            run.template.sha256,
            judge_settings(run.ctx),
            prompt.prompt_hash,
        )
        for s, t in ((ax, ay), (ay, ax))
    ]
    rows = await run.ctx.store.fetchall("SELECT key, verdict FROM eval_verdicts WHERE key IN (?, ?)", keys)
    if len(rows) == 2:
        found = {r["key"]: r["verdict"] or None for r in rows}
        run.tally.verdicts_cached += 2
        run.tally.add_pair(x, y, found[keys[0]], found[keys[1]])
        run.steps.tick(2)
        return
    reference = prompt.reference if uses_reference(prompt.category, prompt.reference) else ()
    first, second = await asyncio.gather(
        _ask_pair(run, prompt, ax, ay, reference), _ask_pair(run, prompt, ay, ax, reference)
    )
    if first is None or second is None:
        return
    record = PairRecord(
        run.judge,
        run.suite.name,
        prompt.id,
        prompt.turns,
        run.template.sha256,
        first,
        second,
        combine(first.verdict, second.verdict),
    )
    await run.ctx.store.write(eval_store.save_pair(record))
    run.tally.add_pair(x, y, first.verdict, second.verdict)


async def _play(run: Run, pairs: Sequence[tuple[str, str]]) -> None:
    models = sorted({m for pair in pairs for m in pair})
    answers = _answer_all(run, models)
    try:
        async with asyncio.TaskGroup() as group:
            for prompt in run.suite.prompts:
                for x, y in pairs:
                    group.create_task(_pair(run, prompt, x, y, answers))
    finally:
        for task in answers.values():
            task.cancel()
        await asyncio.gather(*answers.values(), return_exceptions=True)


def _pair_total(suite: Suite, pairs: Sequence[tuple[str, str]]) -> int:
    models = {m for pair in pairs for m in pair}
    return len(suite.prompts) * (len(models) + 2 * len(pairs))


async def run_pairwise(
    ctx: EvalContext,
    suite: Suite,
    models: Sequence[str],
    judge: str,
    baseline: str,
    progress: Progress | None = None,
    *,
    run_id: str | None = None,
) -> RunResult:
    """Each model against ``baseline`` on every prompt, both orders; win rates against it."""
    pairs = [(m, baseline) for m in dict.fromkeys(models) if m != baseline]
    if not pairs:
        raise ValueError("pairwise needs at least one model besides the baseline")
    run = _new_run(
        ctx,
        "pairwise",
        suite,
        judge,
        [p[0] for p in pairs],
        baseline,
        _pair_total(suite, pairs),
        progress,
        run_id,
        "pairwise",
    )
    return await _tracked(run, lambda r: _play(r, pairs))


async def run_tournament(
    ctx: EvalContext,
    suite: Suite,
    models: Sequence[str],
    judge: str,
    progress: Progress | None = None,
    *,
    run_id: str | None = None,
) -> RunResult:
    """Every pair of ``models`` on every prompt, both orders; a Bradley-Terry board with CIs."""
    names = sorted(dict.fromkeys(models))
    pairs = list(itertools.combinations(names, 2))
    if not pairs:
        raise ValueError("a tournament needs at least two models")
    run = _new_run(ctx, "tournament", suite, judge, names, "", _pair_total(suite, pairs), progress, run_id, "pairwise")
    return await _tracked(run, lambda r: _play(r, pairs))


# -- single -----------------------------------------------------------------------------------


async def _grade(run: Run, prompt: Prompt, task: asyncio.Task[StoredAnswer | None], model: str) -> None:
    answer = await task
    if answer is None:
        run.steps.tick(len(prompt.turns))
        return
    await asyncio.gather(*(_grade_turn(run, prompt, answer, turn) for turn in range(1, len(prompt.turns) + 1)))


async def _grade_turn(run: Run, prompt: Prompt, answer: StoredAnswer, turn: int) -> None:
    """Like MT-bench, each turn gets its own grade: the judge reads the conversation up to that turn
    (and the references up to it) and grades its last answer. A later turn's verdict row has the
    prompt id ``ID#N``."""
    reference = prompt.reference[:turn] if uses_reference(prompt.category, prompt.reference) else ()
    template = load_template("single_ref", run.ctx.templates) if reference else run.template
    key = verdict_key(
        "single",
        run.judge,
        run.suite.name,
        answer.key,
        "" if turn == 1 else f"turn:{turn}",
        template.sha256,
        judge_settings(run.ctx),
        prompt.prompt_hash,
    )
    row = await run.ctx.store.fetchone("SELECT score FROM eval_verdicts WHERE key = ?", (key,))
    if row is not None:
        run.tally.verdicts_cached += 1
        score = row["score"]
    else:
        try:
            v = await judge_single(run.ctx, run.judge, prompt.turns[:turn], answer.texts[:turn], template, reference)
        except FAILURES as exc:
            log.warning("judge %s failed on %s: %s", run.judge, prompt.id, exc)
            run.tally.judge_failures += 1
            run.steps.tick()
            return
        run.tally.judge_replies += 1
        score = v.score
        judged = Judged(key, answer, None, v.raw, None, v.score)
        prompt_id = prompt.id if turn == 1 else f"{prompt.id}#{turn}"
        await run.ctx.store.write(eval_store.save_single(judged, run.judge, run.suite.name, prompt_id, template.sha256))
    run.tally.parse_failures += score is None
    run.tally.scores.setdefault(answer.model, []).append(score)
    run.steps.tick()


async def _grade_all(run: Run) -> None:
    answers = _answer_all(run, run.models)
    try:
        async with asyncio.TaskGroup() as group:
            for prompt in run.suite.prompts:
                for model in run.models:
                    group.create_task(_grade(run, prompt, answers[(model, prompt.id)], model))
    finally:
        for task in answers.values():
            task.cancel()
        await asyncio.gather(*answers.values(), return_exceptions=True)


async def run_single(
    ctx: EvalContext,
    suite: Suite,
    models: Sequence[str],
    judge: str,
    progress: Progress | None = None,
    *,
    run_id: str | None = None,
) -> RunResult:
    """MT-bench-style grades, 1-10, one per turn, against reference answers for math, reasoning and coding."""
    names = list(dict.fromkeys(models))
    if not names:
        raise ValueError("single grading needs at least one model")
    total = len(names) * sum(1 + len(p.turns) for p in suite.prompts)  # answers, then a grade per turn
    run = _new_run(ctx, "single", suite, judge, names, "", total, progress, run_id, "single")
    return await _tracked(run, _grade_all)


# -- results ----------------------------------------------------------------------------------


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and a normal 95% interval (the mean itself twice for fewer than two values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = 1.96 * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def win_rates(outcomes: Sequence[tuple[str, str, str]], baseline: str) -> dict[str, dict[str, Any]]:
    """Each model's wins, ties and losses against ``baseline``; a tie counts half."""
    out: dict[str, dict[str, Any]] = {}
    for x, y, decided in outcomes:
        if baseline not in (x, y) or x == y:
            continue
        model, won = (x, "model_a") if y == baseline else (y, "model_b")
        row = out.setdefault(model, {"wins": 0, "ties": 0, "losses": 0})
        row["wins" if decided == won else "ties" if decided == "tie" else "losses"] += 1
    for row in out.values():
        points = [1.0] * row["wins"] + [0.5] * row["ties"] + [0.0] * row["losses"]
        rate, low, high = mean_ci(points)
        row.update(n=len(points), win_rate=round(rate, 4), ci=[round(max(0.0, low), 4), round(min(1.0, high), 4)])
    return out


def bt_board(outcomes: Sequence[tuple[str, str, str]], models: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Bradley-Terry ratings with 95% sandwich intervals from pair outcomes."""
    if not outcomes:
        return []
    a, b, w = zip(*outcomes, strict=True)
    cells = aggregate_battles(list(a), list(b), list(w), models=sorted(models) if models else None)
    return [dict(r) for r in compute_leaderboard(cells).as_dicts()]


def _fill_result(run: Run, result: RunResult) -> None:
    outcomes = run.tally.outcomes
    if run.kind == "pairwise":
        result.win_rates = win_rates(outcomes, run.baseline)
    elif run.kind == "tournament":
        result.board = bt_board(outcomes, run.models)
    else:
        for model in run.models:
            grades = [s for s in run.tally.scores.get(model, []) if s is not None]
            mean, low, high = mean_ci(grades)
            failed = sum(s is None for s in run.tally.scores.get(model, []))
            result.scores[model] = {
                "mean": _number(mean),
                "ci": [_number(low), _number(high)],
                "n": len(grades),
                "parse_failures": failed,
            }


def _number(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 3)
