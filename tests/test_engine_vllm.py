"""VLLMEngine: a contract test against a stand-in for vLLM's API, plus real-vLLM checks.

The contract tests need no vLLM and no GPU: they inject fake ``AsyncEngineArgs``, ``AsyncLLM``,
``SamplingParams``, ``RequestOutputKind.DELTA`` and ``StructuredOutputsParams`` through the
engine's ``api_factory`` seam, shaped like vLLM 0.33's (see the top of app/engines/vllm.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.engines.base import (
    ChatMessage,
    ContextLengthExceeded,
    Delta,
    EngineError,
    GenerationRequest,
)
from app.engines.vllm import VLLM_VERSION, VLLMApi, VLLMEngine

DELTA = object()  # stands for RequestOutputKind.DELTA
PIECES = [("Hel", [11, 12]), ("lo", [13]), ("", [14]), (" there", [15, 16])]


class FakeTokenizer:
    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool, tokenize: bool) -> str:
        assert add_generation_prompt and not tokenize
        turns = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        return turns + "<assistant>"

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([1] if add_special_tokens else []) + [ord(c) for c in text]


@dataclass
class FakeSamplingParams:
    kwargs: dict[str, Any]


@dataclass
class FakeStructured:
    json: Any


@dataclass
class FakeLLM:
    """Records what the adapter asks of vLLM and streams DELTA outputs."""

    args: Any
    model_config: Any = field(default_factory=lambda: SimpleNamespace(max_model_len=64))
    generate_calls: list[tuple[Any, Any, str]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    closed_streams: list[str] = field(default_factory=list)
    finish_reason: str = "length"
    shut_down: bool = False

    @classmethod
    def from_engine_args(cls, args: Any) -> FakeLLM:
        return cls(args)

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    async def generate(self, prompt: Any, sampling_params: Any, request_id: str) -> AsyncIterator[Any]:
        self.generate_calls.append((prompt, sampling_params, request_id))
        try:
            for i, (text, ids) in enumerate(PIECES):
                last = i == len(PIECES) - 1
                choice = SimpleNamespace(text=text, token_ids=ids, finish_reason=self.finish_reason if last else None)
                yield SimpleNamespace(
                    request_id=request_id,
                    prompt_token_ids=prompt["prompt_token_ids"] if i == 0 else None,
                    outputs=[choice],
                    finished=last,
                )
                await asyncio.sleep(0)
        except GeneratorExit:
            self.closed_streams.append(request_id)
            raise

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    async def check_health(self) -> None:
        if self.shut_down:
            raise RuntimeError("engine dead")

    def shutdown(self) -> None:
        self.shut_down = True


def fake_api(*, structured: bool = True) -> VLLMApi:
    return VLLMApi(
        engine_args=lambda **kw: SimpleNamespace(**kw),
        async_llm=FakeLLM,
        sampling_params=lambda **kw: FakeSamplingParams(kw),
        delta=DELTA,
        structured_outputs=FakeStructured if structured else None,
    )


def started(**kwargs: Any) -> VLLMEngine:
    structured = kwargs.pop("structured", True)
    engine = VLLMEngine("/models/tiny", api_factory=lambda: fake_api(structured=structured), **kwargs)
    asyncio.run(engine.start())
    return engine


def llm(engine: VLLMEngine) -> FakeLLM:
    fake = engine._engine
    assert isinstance(fake, FakeLLM)
    return fake


def chat(**kwargs: Any) -> GenerationRequest:
    messages = [ChatMessage("developer", "Be brief."), ChatMessage("user", "Hi")]
    return GenerationRequest("req-7", messages=messages, **kwargs)


def collect(engine: VLLMEngine, request: GenerationRequest, **kwargs: Any) -> list[Delta]:
    async def run() -> list[Delta]:
        return [d async for d in engine.stream(request, **kwargs)]

    return asyncio.run(run())


def test_start_builds_engine_args_and_reads_the_context() -> None:
    engine = started(gpu_memory_utilization=0.5, dtype="bfloat16", engine_args={"seed": 0})
    args = vars(llm(engine).args)
    assert args == {
        "model": "/models/tiny",
        "dtype": "bfloat16",
        "gpu_memory_utilization": 0.5,
        "seed": 0,
    }
    assert engine.max_context == 64  # from model_config when max_model_len is not given
    assert engine.structured is True

    pinned = started(max_model_len=32)
    assert vars(llm(pinned).args)["max_model_len"] == 32
    assert pinned.max_context == 32


def test_stream_passes_delta_kind_and_request_fields() -> None:
    engine = started()
    deltas = collect(engine, chat(max_tokens=20, seed=5, stop=["END"], temperature=0.0))

    prompt, params, request_id = llm(engine).generate_calls[0]
    expected_ids = FakeTokenizer().encode("<system>Be brief.<user>Hi<assistant>", False)
    assert prompt == {"prompt_token_ids": expected_ids}
    assert request_id == "req-7"
    assert params.kwargs["output_kind"] is DELTA
    assert params.kwargs["max_tokens"] == 20
    assert params.kwargs["seed"] == 5
    assert params.kwargs["stop"] == ["END"]
    assert params.kwargs["temperature"] == 0.0
    assert params.kwargs["n"] == 1
    assert "structured_outputs" not in params.kwargs
    assert (params.kwargs["min_p"], params.kwargs["repetition_penalty"]) == (0.0, 1.0)
    assert "top_k" not in params.kwargs  # off: vLLM's own default

    assert [d.text for d in deltas] == ["Hel", "lo", " there"]
    assert [d.completion_tokens for d in deltas] == [2, 3, 6]
    assert all(d.prompt_tokens == len(expected_ids) for d in deltas)
    assert deltas[-1].finish_reason == "length"


def test_top_k_min_p_and_repeat_penalty_reach_sampling_params() -> None:
    engine = started()
    collect(engine, chat(max_tokens=5, temperature=0.7, top_k=40, min_p=0.05, repeat_penalty=1.1))
    params = llm(engine).generate_calls[0][1]
    assert (params.kwargs["top_k"], params.kwargs["min_p"], params.kwargs["repetition_penalty"]) == (40, 0.05, 1.1)


def test_finish_reasons_map_and_max_tokens_defaults_to_the_rest_of_the_context() -> None:
    engine = started()
    llm(engine).finish_reason = "stop"
    deltas = collect(engine, GenerationRequest("raw", prompt="abc"))
    assert deltas[-1].finish_reason == "stop"
    _, params, _ = llm(engine).generate_calls[0]
    assert params.kwargs["max_tokens"] == 64 - 4  # BOS + 3 characters
    assert params.kwargs["stop"] is None and params.kwargs["seed"] is None


def test_context_overflow_is_caught_before_vllm_sees_the_request() -> None:
    engine = started()
    with pytest.raises(ContextLengthExceeded) as info:
        collect(engine, chat(max_tokens=60))
    assert info.value.max_context == 64
    with pytest.raises(ContextLengthExceeded):
        collect(engine, GenerationRequest("long", prompt="x" * 100))
    assert llm(engine).generate_calls == []


def test_aclose_aborts_the_same_request_id() -> None:
    engine = started()

    async def run() -> None:
        gen = engine.stream(chat(max_tokens=20))
        first = await gen.__anext__()
        assert first.text == "Hel"
        await gen.aclose()

    asyncio.run(run())
    assert llm(engine).closed_streams == ["req-7"]
    assert llm(engine).aborted == ["req-7"]
    assert engine.stats().running == 0


def test_abort_and_generate_pass_through() -> None:
    engine = started()
    asyncio.run(engine.abort("some-id"))
    assert llm(engine).aborted == ["some-id"]

    async def run() -> list[Delta]:
        return [d async for d in engine.generate(chat(max_tokens=8))]

    assert asyncio.run(run())[-1].completion_tokens == 6
    assert llm(engine).aborted == ["some-id"]  # a finished stream is not aborted


def test_json_schema_uses_structured_outputs() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    engine = started()
    collect(engine, chat(max_tokens=8), json_schema=schema)
    _, params, _ = llm(engine).generate_calls[0]
    assert params.kwargs["structured_outputs"] == FakeStructured(json=schema)

    plain = started(structured=False)
    assert plain.structured is False
    with pytest.raises(EngineError, match="structured outputs"):
        collect(plain, chat(max_tokens=8), json_schema=schema)


def test_lifecycle_errors_and_health() -> None:
    engine = VLLMEngine("/models/tiny", api_factory=fake_api)
    assert asyncio.run(engine.health()) is False
    with pytest.raises(EngineError, match="not started"):
        collect(engine, chat())

    engine = started()
    fake = llm(engine)
    assert asyncio.run(engine.health()) is True
    asyncio.run(engine.close())
    assert fake.shut_down and asyncio.run(engine.health()) is False


def test_missing_vllm_is_a_clear_error() -> None:
    def absent() -> VLLMApi:
        raise ImportError("No module named 'vllm'")

    engine = VLLMEngine("/models/tiny", api_factory=absent)
    with pytest.raises(EngineError, match=f"vllm=={VLLM_VERSION}"):
        asyncio.run(engine.start())


# Real vLLM: only where it is installed (the `gpu` extra), never in CI without a GPU. -----

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (gpu extra only)")


@needs_vllm
def test_installed_vllm_has_the_api_this_adapter_uses() -> None:
    from app.engines.vllm import import_vllm

    api = import_vllm()
    assert hasattr(api.async_llm, "from_engine_args")
    params = api.sampling_params(max_tokens=4, seed=1, stop=["x"], output_kind=api.delta)
    assert params.output_kind == api.delta
    if api.structured_outputs is not None:
        api.sampling_params(structured_outputs=api.structured_outputs(json={"type": "object"}))


@needs_vllm
def test_real_vllm_streams_a_tiny_model(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vLLM is installed but there is no CUDA device")
    from tests.helpers.tiny_hf import build_tiny_model

    path = build_tiny_model(tmp_path / "tiny")
    engine = VLLMEngine(str(path), gpu_memory_utilization=0.3, engine_args={"enforce_eager": True})

    async def run() -> list[Delta]:
        await engine.start()
        try:
            return [d async for d in engine.generate(chat(max_tokens=8, temperature=0))]
        finally:
            await engine.close()

    deltas = asyncio.run(run())
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].completion_tokens == 8
