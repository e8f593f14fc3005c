"""Hole 7: every engine bounds its queue the same way (a full one answers 503 with Retry-After),
and reports one typed EngineStats that /admin and /metrics read."""

from __future__ import annotations

import asyncio

import pytest

from app.engines.base import EngineOverloaded, EngineStats, Gate, GenerationRequest
from app.engines.remote import RemoteEngine
from app.engines.scripted import ScriptedEngine
from app.engines.transformers import TransformersEngine
from app.engines.vllm import VLLMEngine


async def test_gate_runs_parallel_queues_max_queue_refuses_the_rest() -> None:
    gate = Gate(parallel=1, max_queue=1, retry_after=3)
    await gate.acquire()  # runs
    waiter = asyncio.create_task(gate.acquire())  # waits
    await asyncio.sleep(0)
    assert (gate.running, gate.waiting) == (1, 1)
    with pytest.raises(EngineOverloaded) as info:
        await gate.acquire()
    assert info.value.retry_after == 3
    gate.release()
    await waiter
    assert (gate.running, gate.waiting) == (1, 0)
    gate.release()


def test_every_engine_has_a_bounded_gate_and_typed_stats() -> None:
    engines = [
        ScriptedEngine(max_queue=5),
        TransformersEngine("/nowhere", max_queue=5),
        VLLMEngine("/nowhere", max_queue=5),
        RemoteEngine("http://127.0.0.1:9", "m", max_queue=5),
    ]
    for engine in engines:
        stats = engine.stats()
        assert isinstance(stats, EngineStats), type(engine).__name__
        assert stats.max_queue == 5 and stats.running == 0 and stats.queue_depth == 0


async def test_transformers_queue_is_bounded_before_any_thread_starts(monkeypatch) -> None:
    """Once, each request started a thread with no bound. Now the third waits for nothing: 503."""
    engine = TransformersEngine("/nowhere", max_queue=1)
    release = asyncio.Event()

    async def slow(request: GenerationRequest):  # type: ignore[no-untyped-def]
        await release.wait()
        yield None

    monkeypatch.setattr(engine, "_generate", slow)
    first = engine.generate(GenerationRequest("1", prompt="x"))
    second = engine.generate(GenerationRequest("2", prompt="x"))
    tasks = [asyncio.create_task(anext(first)), asyncio.create_task(anext(second))]
    await asyncio.sleep(0.01)
    assert (engine.gate.running, engine.gate.waiting) == (1, 1) and engine.stats().queue_depth == 1
    with pytest.raises(EngineOverloaded):
        await anext(engine.generate(GenerationRequest("3", prompt="x")))
    release.set()
    await tasks[0]
    await first.aclose()  # frees the slot: the waiting one runs
    await tasks[1]
    await second.aclose()
    assert (engine.gate.running, engine.gate.waiting) == (0, 0)


async def test_a_full_queue_is_503_with_retry_after_on_v1_and_shown_to_admin(arena) -> None:
    async with arena({"alpha": [" ".join(["w"] * 50)], "beta": ["b"]}, admin_token="t" * 16) as c:
        engine = c.app.state.models.get("alpha").engine
        engine.delay = 0.02
        engine.gate = Gate(parallel=1, max_queue=1)
        body = {"model": "alpha", "messages": [{"role": "user", "content": "Hi"}]}
        running = [asyncio.create_task(c.post("/v1/chat/completions", json=body)) for _ in range(2)]
        while engine.gate.waiting < 1:
            await asyncio.sleep(0.01)
        admin = (await c.get("/api/v1/admin/models", headers={"Authorization": "Bearer " + "t" * 16})).json()
        alpha = next(m for m in admin["models"] if m["id"] == "alpha")
        assert (alpha["queue_depth"], alpha["max_queue"]) == (1, 1)
        metrics = (await c.get("/metrics", headers={"Authorization": "Bearer " + "t" * 16})).text
        assert 'arena_queue_depth{model="alpha"} 1.0' in metrics
        r = await c.post("/v1/chat/completions", json=body)
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
        assert [t.status_code for t in await asyncio.gather(*running)] == [200, 200]
