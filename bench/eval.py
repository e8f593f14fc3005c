"""LLM-as-judge speed on the bundled Gemma: judge verdicts per second through the eval harness,
and the harness's overhead against raw engine generation of the very same judge prompts, in one run.

  anchor: the llama.cpp engine's own ``generate`` on the rendered judge prompts, one after another
  ours:   ``run_pairwise`` judging the same pairs (answers cached, verdicts cleared before each
          round): rendering, generate.start at eval priority, parsing, and one transaction per pair
          (two verdicts, the battle, its messages and vote)

Greedy judge, one stream, the same prompts in the same order; rounds alternate anchor and ours (ABBA).
The two must generate the same number of tokens (printed), or the comparison is void.
Target: harness <= 5% of the time.

    ARENA_DEMO_MODEL= python bench/eval.py [--prompts 4] [--rounds 2] [--judge-max-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.engines.base import ChatMessage, GenerationRequest  # noqa: E402
from app.eval.answers import get_answer  # noqa: E402
from app.eval.context import EvalContext, open_context  # noqa: E402
from app.eval.runs import run_pairwise  # noqa: E402
from app.eval.suites import Suite, load_suite  # noqa: E402
from app.eval.templates import load_template, render_pairwise, uses_reference  # noqa: E402
from app.settings import Settings  # noqa: E402

GREEDY, SAMPLED = "gemma-3-270m-greedy", "gemma-3-270m-t0.8"


def clear_verdicts(conn: sqlite3.Connection) -> None:
    """Forget every verdict and judge battle, keep the answers: the next run judges again."""
    for table in ("eval_verdicts", "votes", "messages", "battles", "pair_counts"):
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


async def judge_prompts(ctx: EvalContext, suite: Suite) -> list[str]:
    """The judge prompts the harness sends, in its order: per prompt, SAMPLED as A, then as B."""
    template = load_template("pairwise")
    texts = []
    for prompt in suite.prompts:
        x, _ = await get_answer(ctx, SAMPLED, prompt)
        y, _ = await get_answer(ctx, GREEDY, prompt)
        reference = prompt.reference if uses_reference(prompt.category, prompt.reference) else ()
        texts.append(render_pairwise(template, prompt.turns, x.texts, y.texts, reference))
        texts.append(render_pairwise(template, prompt.turns, y.texts, x.texts, reference))
    return texts


Row = tuple[float, float, int]  # wall seconds, process CPU seconds (llama.cpp's threads included), tokens


async def raw(ctx: EvalContext, texts: list[str], generate: Any = None) -> Row:
    engine = ctx.models.get(GREEDY).engine
    assert engine is not None
    generate = generate or engine.generate
    tokens = 0
    started, cpu = time.perf_counter(), time.process_time()
    for i, text in enumerate(texts):
        request = GenerationRequest(
            f"raw-{i}",
            messages=[ChatMessage("user", text)],
            max_tokens=ctx.judge_max_tokens,
            max_tokens_explicit=False,
            temperature=0.0,
            top_p=1.0,
        )
        last = None
        async for delta in generate(request):
            last = delta
        tokens += last.completion_tokens if last else 0
    return time.perf_counter() - started, time.process_time() - cpu, tokens


class EngineClock:
    """Seconds spent inside the judge engine's ``generate`` streams (first call to last delta)."""

    def __init__(self, engine: Any) -> None:
        self.seconds = 0.0
        self.original = engine.generate
        engine.generate = self.generate

    async def generate(self, request: GenerationRequest) -> Any:
        started = time.perf_counter()
        try:
            async for delta in self.original(request):
                yield delta
        finally:
            self.seconds += time.perf_counter() - started


async def ours(ctx: EvalContext, suite: Suite, clock: EngineClock) -> tuple[Row, float, Any]:
    await ctx.store.write(clear_verdicts)
    entry = ctx.models.get(GREEDY)
    before, inside = entry.stats.tokens, clock.seconds
    started, cpu = time.perf_counter(), time.process_time()
    result = await run_pairwise(ctx, suite, [SAMPLED], GREEDY, GREEDY)
    wall = time.perf_counter() - started
    row = (wall, time.process_time() - cpu, entry.stats.tokens - before)
    return row, 1 - (clock.seconds - inside) / wall, result


async def bench(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="arena-eval-bench-"))
    settings = Settings(db=tmp / "eval.db", check_engines=False, parallel=1)
    full = load_suite("demo", tmp)
    suite = Suite("bench", tuple(p for p in full.prompts if len(p.turns) == 1)[: args.prompts], "demo")
    options = {"concurrency": 1, "judge_max_tokens": args.judge_max_tokens, "max_tokens": args.max_tokens}
    async with open_context(settings, [GREEDY, SAMPLED], **options) as ctx:
        began = time.perf_counter()
        texts = await judge_prompts(ctx, suite)  # answers generated and cached; the engines warm
        answers_s = time.perf_counter() - began
        await raw(ctx, texts[:1])  # warm the judge path once
        rows: dict[str, list[Row]] = {"anchor": [], "ours": []}
        last: Any = None
        clock = EngineClock(ctx.models.get(GREEDY).engine)
        outside: list[float] = []
        for round_ in range(args.rounds):  # ABBA: a drift in the machine's load hits both alike
            if round_ % 2:
                rows["anchor"].append(await raw(ctx, texts, clock.original))
            row, share, last = await ours(ctx, suite, clock)
            rows["ours"].append(row)
            outside.append(share)
            if not round_ % 2:
                rows["anchor"].append(await raw(ctx, texts, clock.original))
    report(args, suite, len(texts), answers_s, rows, last, outside)


def report(
    args: argparse.Namespace,
    suite: Suite,
    n: int,
    answers_s: float,
    rows: dict[str, list[Row]],
    last: Any,
    outside: list[float],
) -> None:
    print(
        f"eval bench: bundled Gemma 3 270M judging {SAMPLED} vs {GREEDY}; {len(suite.prompts)} prompts x 2 orders"
        f" = {n} judge replies per round, max {args.judge_max_tokens} tokens, {args.rounds} rounds (ABBA), one stream"
    )
    print(f"answers (2 models x {len(suite.prompts)} prompts, max {args.max_tokens} tokens): {answers_s:.1f} s")
    print(f"{'system':<32}{'wall s/round':>13}{'cpu s/round':>13}{'verdicts/s':>12}{'tokens/round':>14}")
    wall, cpu = {}, {}
    for name, label in (("anchor", "anchor: raw llama.cpp engine"), ("ours", "ours: arena eval harness")):
        wall[name] = statistics.median(r[0] for r in rows[name])
        cpu[name] = statistics.median(r[1] for r in rows[name])
        tokens = "/".join(str(t) for t in sorted({r[2] for r in rows[name]}))
        print(f"{label:<32}{wall[name]:>13.2f}{cpu[name]:>13.2f}{n / wall[name]:>12.2f}{tokens:>14}")
    pairs = ", ".join(f"{a[0]:.2f}/{o[0]:.2f}" for a, o in zip(rows["anchor"], rows["ours"], strict=True))
    print(f"per round, wall s (anchor/ours): {pairs}")
    for label, m in (("wall", wall), ("cpu", cpu)):
        print(
            f"harness overhead vs the anchor, {label} time (medians): {(m['ours'] - m['anchor']) / m['ours'] * 100:+.1f}%"
            " (target <= 5%)"
        )
    print(f"harness time outside the engine's streams, same rounds: {statistics.median(outside) * 100:.2f}%")
    t = last.tally
    print(
        f"last round: {t.pairs} pairs decided, {t.ties} ties, {t.parse_failures} replies did not parse "
        f"(the 270M judge's verdicts are not the point here)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--judge-max-tokens", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=64)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
