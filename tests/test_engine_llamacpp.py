"""The llama.cpp engine in-process on the bundled Gemma model."""

from __future__ import annotations

import asyncio

import pytest

from app.engines.base import ChatMessage, ContextLengthExceeded, EngineOverloaded, GenerationRequest
from app.engines.llamacpp import CpuBudget, LlamaCppEngine, LlamaWeights
from app.registry.spec import load_models

PROMPT = [ChatMessage("user", "Write a long story about a dragon who learns to bake bread.")]


@pytest.fixture(scope="module")
def weights():
    w = LlamaWeights(load_models(None)[0].resolved_weights(), n_ctx=512)
    w.load()
    yield w
    w.close()


def _engine(weights: LlamaWeights, **kw) -> LlamaCppEngine:
    return LlamaCppEngine(weights, CpuBudget(2), chat_format="gemma", **kw)


def _req(**kw) -> GenerationRequest:
    kw.setdefault("messages", PROMPT)
    return GenerationRequest(request_id=kw.pop("rid", "r"), temperature=kw.pop("temperature", 0.0), **kw)


async def _all(engine: LlamaCppEngine, request: GenerationRequest):
    return [d async for d in engine.generate(request)]


async def test_exact_counts_and_length_finish(weights: LlamaWeights) -> None:
    engine = _engine(weights)
    deltas = await _all(engine, _req(max_tokens=9))
    prompt = weights.tokenize(engine.render(_req()).text)
    assert all(d.prompt_tokens == len(prompt) for d in deltas)
    assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 9
    assert [d.finish_reason for d in deltas].count(None) == len(deltas) - 1
    counts = [d.completion_tokens for d in deltas]
    assert counts == sorted(counts)
    await engine.close()


async def test_seeded_sampling_repeats_and_differs_by_seed(weights: LlamaWeights) -> None:
    engine = _engine(weights)

    async def text(seed: int) -> str:
        return "".join(d.text for d in await _all(engine, _req(max_tokens=20, temperature=1.0, seed=seed)))

    first = await text(11)
    assert first == await text(11)
    assert any([await text(s) != first for s in (12, 13, 14)])
    await engine.close()


async def test_closing_the_stream_stops_generation_within_a_token(weights: LlamaWeights) -> None:
    engine = _engine(weights)
    gen = engine.generate(_req(max_tokens=400))
    seen = 0
    async for _ in gen:
        seen += 1
        if seen == 3:
            break
    await gen.aclose()
    before = engine.generated_tokens
    await asyncio.sleep(0.3)  # the worker would have made several more tokens by now
    assert engine.generated_tokens - before <= 1
    assert engine.aborted == 1
    # the slot is free again: the next request runs
    assert (await _all(engine, _req(max_tokens=2)))[-1].completion_tokens == 2
    await engine.close()


async def test_context_overflow_is_caught_before_generating(weights: LlamaWeights) -> None:
    engine = _engine(weights)
    with pytest.raises(ContextLengthExceeded, match="maximum context length is 512 tokens"):
        await _all(engine, _req(messages=[ChatMessage("user", "word " * 600)]))
    with pytest.raises(ContextLengthExceeded):
        await _all(engine, _req(max_tokens=500))
    # a model default (not the client's max_tokens) shortens the answer instead
    deltas = await _all(engine, _req(max_tokens=500, max_tokens_explicit=False))
    assert deltas[-1].prompt_tokens + deltas[-1].completion_tokens <= 512
    assert engine.generated_tokens == deltas[-1].completion_tokens
    await engine.close()


async def test_full_queue_is_refused(weights: LlamaWeights) -> None:
    engine = _engine(weights, parallel=1, max_queue=1)
    running = engine.generate(_req(max_tokens=200, rid="a"))
    await anext(running)
    waiting = asyncio.ensure_future(_all(engine, _req(max_tokens=2, rid="b")))
    await asyncio.sleep(0.05)
    assert engine.stats().queue_depth == 1
    with pytest.raises(EngineOverloaded):
        await _all(engine, _req(max_tokens=2, rid="c"))
    await running.aclose()
    assert (await waiting)[-1].completion_tokens == 2
    await engine.close()


async def test_concurrent_streams_use_their_own_contexts(weights: LlamaWeights) -> None:
    engine = _engine(weights, parallel=2)
    alone = "".join(d.text for d in await _all(engine, _req(max_tokens=16)))
    together = await asyncio.gather(
        _all(engine, _req(max_tokens=16, rid="x")), _all(engine, _req(max_tokens=16, rid="y"))
    )
    assert ["".join(d.text for d in ds) for ds in together] == [alone, alone]
    await engine.close()


async def test_stop_strings(weights: LlamaWeights) -> None:
    engine = _engine(weights)
    full = "".join(d.text for d in await _all(engine, _req(max_tokens=30)))
    word = full.split()[len(full.split()) // 2]
    deltas = await _all(engine, _req(max_tokens=30, stop=[word]))
    assert "".join(d.text for d in deltas) == full[: full.index(word)]
    assert deltas[-1].finish_reason == "stop"
    await engine.close()


async def test_top_k_min_p_and_repeat_penalty_are_honoured(weights: LlamaWeights) -> None:
    engine = _engine(weights)

    async def text(**kw) -> str:
        return "".join(d.text for d in await _all(engine, _req(max_tokens=24, **kw)))

    greedy = await text()
    # top_k = 1 and min_p = 1 keep the likeliest token only: hot sampling with any seed is greedy
    assert {await text(temperature=1.5, top_k=1, seed=s) for s in (1, 2, 3)} == {greedy}
    assert {await text(temperature=1.5, min_p=1.0, seed=s) for s in (1, 2, 3)} == {greedy}
    assert len({await text(temperature=1.5, seed=s) for s in (1, 2, 3)}) > 1  # the anchor: they differ without
    # a repeat penalty changes even a greedy answer; 1.0 is off
    assert await text(repeat_penalty=1.0) == greedy
    assert await text(repeat_penalty=1.5) != greedy
    await engine.close()


async def test_without_a_seed_each_sample_draws_a_fresh_one(weights: LlamaWeights) -> None:
    engine = _engine(weights)
    texts = {"".join(d.text for d in await _all(engine, _req(max_tokens=16, temperature=1.0))) for _ in range(4)}
    assert len(texts) > 1
    await engine.close()
