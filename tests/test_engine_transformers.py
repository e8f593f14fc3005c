"""TransformersEngine against a tiny random Llama checkpoint built in the test (no downloads)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from app.engines.base import (  # noqa: E402
    ChatMessage,
    ContextLengthExceeded,
    Delta,
    EngineStats,
    GenerationRequest,
)
from app.engines.transformers import IncrementalDetokenizer, TransformersEngine  # noqa: E402
from tests.helpers.tiny_hf import build_tiny_model  # noqa: E402

CONTEXT = 2048
HELLO = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello there")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", max_position_embeddings=CONTEXT)


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> TransformersEngine:
    eng = TransformersEngine(str(model_dir), device="cpu")
    eng.load()
    return eng


def collect(engine: TransformersEngine, request: GenerationRequest) -> list[Delta]:
    async def run() -> list[Delta]:
        return [d async for d in engine.generate(request)]

    return asyncio.run(run())


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


def chat(request_id: str = "r", **kwargs: Any) -> GenerationRequest:
    kwargs.setdefault("temperature", 0.0)
    return GenerationRequest(request_id, messages=list(HELLO), **kwargs)


def test_load_reads_context_and_device(engine: TransformersEngine) -> None:
    assert engine.device == "cpu"
    assert engine.max_context == CONTEXT
    assert asyncio.run(engine.health()) is True


def test_streams_with_exact_counts(engine: TransformersEngine) -> None:
    tok = engine._tokenizer
    templated = tok.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in HELLO],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    deltas = collect(engine, chat(max_tokens=12))

    assert len(deltas) > 2
    assert all(d.prompt_tokens == len(templated) for d in deltas)
    counts = [d.completion_tokens for d in deltas]
    assert counts == sorted(counts) and counts[0] >= 1
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].completion_tokens == 12


def test_greedy_matches_hf_generate(engine: TransformersEngine) -> None:
    """Our KV-cache loop and incremental detokeniser agree with transformers' own generate."""
    tok, model = engine._tokenizer, engine._model
    ids = engine.encode_prompt(chat())
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=16,
            min_new_tokens=16,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
    expected = tok.decode(out[0, len(ids) :], skip_special_tokens=True)
    assert text_of(collect(engine, chat(max_tokens=16))) == expected


def test_raw_prompt_counts(engine: TransformersEngine) -> None:
    prompt = "The quick brown"
    n_prompt = len(engine._tokenizer(prompt)["input_ids"])
    deltas = collect(engine, GenerationRequest("p", prompt=prompt, max_tokens=5, temperature=0))
    assert deltas[-1].prompt_tokens == n_prompt
    assert deltas[-1].completion_tokens == 5


def test_max_tokens_none_fills_the_context(model_dir: Path) -> None:
    small = TransformersEngine(str(model_dir), device="cpu", max_context=40)
    small.load()
    n_prompt = len(small.encode_prompt(chat()))
    deltas = collect(small, chat())
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].completion_tokens == 40 - n_prompt


def test_aclose_cancels_the_worker(engine: TransformersEngine) -> None:
    max_tokens = CONTEXT - 100

    async def run() -> EngineStats:
        gen = engine.generate(chat("cancel-me", max_tokens=max_tokens))
        seen = [await gen.__anext__(), await gen.__anext__()]
        assert all(d.finish_reason is None for d in seen)
        await gen.aclose()
        for _ in range(2000):  # bounded wait for the worker thread to notice the flag
            stats = engine.stats()
            if stats.running == 0 and stats.queue_depth == 0:
                return stats
            await asyncio.sleep(0.01)
        raise AssertionError("worker still running after aclose")

    before = engine.stats().tokens_generated_total
    after = asyncio.run(run()).tokens_generated_total
    assert engine.last_generated == after - before
    assert engine.last_generated < max_tokens // 2


def test_abort_by_request_id_ends_with_abort(engine: TransformersEngine) -> None:
    async def run() -> list[Delta]:
        deltas = []
        async for d in engine.generate(chat("to-abort", max_tokens=CONTEXT - 100)):
            deltas.append(d)
            if len(deltas) == 2:
                await engine.abort("to-abort")
        return deltas

    deltas = asyncio.run(run())
    assert deltas[-1].finish_reason == "abort"
    assert deltas[-1].completion_tokens < CONTEXT // 2


def test_seed_reproducibility(engine: TransformersEngine) -> None:
    def sample(seed: int) -> str:
        return text_of(collect(engine, chat(max_tokens=24, temperature=5.0, seed=seed)))

    assert sample(7) == sample(7)
    assert len({sample(s) for s in range(1, 5)}) > 1


def test_context_overflow_raises_before_any_delta(engine: TransformersEngine) -> None:
    n_prompt = len(engine.encode_prompt(chat()))
    with pytest.raises(ContextLengthExceeded) as info:
        collect(engine, chat(max_tokens=CONTEXT))
    assert (info.value.max_context, info.value.prompt_tokens) == (CONTEXT, n_prompt)
    assert info.value.max_tokens == CONTEXT

    long_prompt = GenerationRequest("long", prompt="fox " * CONTEXT)
    with pytest.raises(ContextLengthExceeded):
        collect(engine, long_prompt)


def test_stop_string_cuts_and_is_not_emitted(engine: TransformersEngine) -> None:
    full = text_of(collect(engine, chat(max_tokens=30)))
    stop = full[6:8]
    assert len(stop) == 2
    deltas = collect(engine, chat(max_tokens=30, stop=["never-there", stop]))
    assert text_of(deltas) == full[: full.index(stop)]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].completion_tokens < 30


def test_eos_from_generation_config_stops(engine: TransformersEngine, tmp_path: Path) -> None:
    # The first greedy token becomes an extra EOS id in generation_config.json.
    first_id = _first_greedy_id(engine)
    assert first_id != engine._tokenizer.eos_token_id
    copy = tmp_path / "eos-model"
    shutil.copytree(engine.path, copy)
    cfg_path = copy / "generation_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["eos_token_id"] = [engine._tokenizer.eos_token_id, first_id]
    cfg_path.write_text(json.dumps(cfg))
    eos_engine = TransformersEngine(str(copy), device="cpu")
    eos_engine.load()
    deltas = collect(eos_engine, chat(max_tokens=10))
    assert text_of(deltas) == ""
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].completion_tokens == 1


def _first_greedy_id(engine: TransformersEngine) -> int:
    ids = engine.encode_prompt(chat())
    with torch.inference_mode():
        logits = engine._model(input_ids=torch.tensor([ids])).logits
    return int(logits[0, -1].argmax())


def test_concurrent_requests_are_serialised_not_mixed(engine: TransformersEngine) -> None:
    solo = text_of(collect(engine, chat(max_tokens=10)))

    async def both() -> list[list[Delta]]:
        async def one(rid: str) -> list[Delta]:
            return [d async for d in engine.generate(chat(rid, max_tokens=10))]

        return list(await asyncio.gather(one("a"), one("b")))

    for deltas in asyncio.run(both()):
        assert text_of(deltas) == solo
        assert deltas[-1].completion_tokens == 10


def test_incremental_detokenizer_never_splits_a_character(engine: TransformersEngine) -> None:
    tok = engine._tokenizer
    text = "ça 日本語 🎉!"
    ids = tok.encode(text)
    assert len(ids) > len(text)  # some characters span several byte-level tokens
    detok = IncrementalDetokenizer(lambda i: tok.decode(i, skip_special_tokens=True), [])
    pieces = [detok.add(i) for i in ids] + [detok.finish()]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == text


def test_top_k_min_p_and_repeat_penalty_are_honoured(engine: TransformersEngine) -> None:
    def sample(**kw: Any) -> str:
        return text_of(collect(engine, chat(max_tokens=16, **kw)))

    greedy = sample()
    assert {sample(temperature=5.0, top_k=1, seed=s) for s in (1, 2, 3)} == {greedy}
    assert {sample(temperature=5.0, min_p=1.0, seed=s) for s in (1, 2, 3)} == {greedy}
    assert len({sample(temperature=5.0, seed=s) for s in (1, 2, 3)}) > 1
    assert sample(repeat_penalty=1.0) == greedy


def test_the_repeat_penalty_lowers_seen_tokens_as_transformers_does() -> None:
    import torch

    from app.engines.transformers import _Sampler

    logits = torch.tensor([2.0, 1.9, -1.0, -1.2])
    sampler = _Sampler(torch, "cpu", chat(repeat_penalty=2.0), prompt_ids=[0, 3])
    assert sampler.pick(logits.clone()) == 1  # 2.0 / 2 = 1.0 < 1.9
    assert sampler.pick(torch.tensor([1.5, 1.8, 1.0, -0.2])) == 2  # 0 and now 1 are seen: 0.75, 0.9 < 1.0
    off = _Sampler(torch, "cpu", chat(), prompt_ids=[0, 3])
    assert off.pick(logits.clone()) == 0
