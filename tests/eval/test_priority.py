"""People before eval work on the same engine: the gate admits a waiting human request before
waiting eval requests, and an eval run's requests ask for the lower priority."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.engines.base import EVAL_PRIORITY, ChatMessage, Gate, GenerationRequest
from app.engines.scripted import ScriptedEngine
from app.eval.runs import run_single
from app.registry import generate
from tests.eval.helpers import RuleEngine, eval_context, judge_rule, prompts


async def test_gate_hands_a_freed_slot_to_the_most_urgent_waiter() -> None:
    gate = Gate(parallel=1, max_queue=8)
    await gate.acquire()
    order: list[str] = []

    async def wait(name: str, priority: int) -> None:
        await gate.acquire(priority)
        order.append(name)

    tasks = [asyncio.create_task(wait(n, p)) for n, p in (("eval1", -10), ("eval2", -10), ("human", 0))]
    await asyncio.sleep(0)
    assert (gate.running, gate.waiting) == (1, 3)
    for _ in range(3):
        gate.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == ["human", "eval1", "eval2"]  # by priority, then first come first served
    gate.release()
    assert (gate.running, gate.waiting) == (0, 0)


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    gate = Gate(parallel=1, max_queue=8)
    await gate.acquire()
    gone = asyncio.create_task(gate.acquire(0))
    kept = asyncio.create_task(gate.acquire(-10))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    gate.release()
    await kept
    assert (gate.running, gate.waiting) == (1, 0)
    gate.release()
    assert gate.running == 0 and await asyncio.wait_for(gate.acquire(), 1) is None


async def test_a_human_request_overtakes_queued_eval_work(tmp_path: Path) -> None:
    """A scripted model with one stream: an eval run queues several grades' answers on it; a
    battle's request that arrives later is served next, through generate.start like a battle's."""
    model = ScriptedEngine(["one two three four"], delay=0.01, parallel=1, max_queue=64)
    engines = {"alpha": model, "judge": RuleEngine(judge_rule)}
    async with eval_context(tmp_path / "a.db", engines, concurrency=4) as ctx:
        run = asyncio.create_task(run_single(ctx, prompts(8), ["alpha"], "judge"))
        while model.gate.waiting < 3:
            await asyncio.sleep(0.001)
        human = GenerationRequest("human-1", messages=[ChatMessage("user", "Hi")])
        started = await generate.start(ctx.models, ctx.metrics, "alpha", human)
        async for _ in started.rest:
            pass
        await run
    ids = [r.request_id for r in model.requests]
    position = ids.index("human-1")
    assert position == 1, ids  # only the eval request already running was before it
    assert all(r.priority == EVAL_PRIORITY for r in model.requests if r.request_id != "human-1")
    assert model.gate.running == 0 and model.gate.waiting == 0
