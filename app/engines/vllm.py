"""One in-process vLLM V1 ``AsyncLLM`` per model.

Written against **vLLM 0.33.0** (the newest release on PyPI, 2026-11). The surface used here
was checked in the v0.32.0 API reference and in the current ``vllm/v1/engine/async_llm.py``
and ``vllm/sampling_params.py`` sources; it has been stable across the 0.2x-0.3x line:

- ``vllm.engine.arg_utils.AsyncEngineArgs(model=..., dtype=..., gpu_memory_utilization=...,
  max_model_len=...)`` and ``vllm.v1.engine.async_llm.AsyncLLM.from_engine_args(args)``;
- ``AsyncLLM.generate(prompt, sampling_params, request_id)``: an async generator of
  ``RequestOutput`` (``.outputs[0].text / .token_ids / .finish_reason``, ``.finished``); closing
  it aborts the request inside vLLM, and ``AsyncLLM.abort(request_id)`` takes our own id;
- ``AsyncLLM.get_tokenizer()`` (plain in 0.3x, a coroutine in older lines: both handled),
  ``check_health()``, ``shutdown()``, ``model_config.max_model_len``;
- images: ``generate({"prompt": text, "multi_modal_data": {"image": PIL image or list}}, ...)``
  with the text from the chat template (image parts become the model's placeholders, which vLLM
  expands); ``model_config.is_multimodal_model`` says whether the checkpoint takes images;
- ``SamplingParams(..., output_kind=RequestOutputKind.DELTA)`` so each output holds only the new
  text and token ids, and ``structured_outputs=StructuredOutputsParams(json=schema)`` (the
  ``guided_*`` fields were removed in 0.12).

vLLM is imported in :meth:`VLLMEngine.start` through a factory (``api_factory``) so that tests
can check this adapter against a stand-in without vLLM or a GPU.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.engines.base import (
    ContextLengthExceeded,
    Delta,
    Engine,
    EngineError,
    EngineStats,
    FinishReason,
    Gate,
    GenerationRequest,
)

VLLM_VERSION = "0.33.0"
_FINISH: dict[str, FinishReason] = {"length": "length", "abort": "abort", "error": "error"}


@dataclass(frozen=True, slots=True)
class VLLMApi:
    """The pieces of vLLM this adapter touches."""

    engine_args: Callable[..., Any]  # AsyncEngineArgs
    async_llm: Any  # AsyncLLM (from_engine_args)
    sampling_params: Callable[..., Any]  # SamplingParams
    delta: Any  # RequestOutputKind.DELTA
    structured_outputs: Callable[..., Any] | None = None  # StructuredOutputsParams


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def import_vllm() -> VLLMApi:
    """Import the installed vLLM's classes (raises ImportError when vLLM is absent)."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind, SamplingParams
    from vllm.v1.engine.async_llm import AsyncLLM

    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:  # a vLLM without structured outputs
        return VLLMApi(AsyncEngineArgs, AsyncLLM, SamplingParams, RequestOutputKind.DELTA)
    return VLLMApi(AsyncEngineArgs, AsyncLLM, SamplingParams, RequestOutputKind.DELTA, StructuredOutputsParams)


class VLLMEngine(Engine):
    """A checkpoint folder (or hub-style path already on disk) served by vLLM on the GPU."""

    kind = "vllm"
    streams = True
    vision = False
    structured = False  # True after start() when the installed vLLM has structured outputs

    def __init__(
        self,
        path: str,
        *,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        dtype: str = "auto",
        engine_args: Mapping[str, Any] | None = None,
        api_factory: Callable[[], VLLMApi] = import_vllm,
        parallel: int = 64,
        max_queue: int = 16,
    ) -> None:
        self.path = path
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.extra_engine_args = dict(engine_args or {})
        self.max_context = max_model_len or 2048
        self._api_factory = api_factory
        self._api: VLLMApi | None = None
        self._engine: Any = None
        self._tokenizer: Any = None
        self._chat: Any = None  # what renders chat with image parts: the HF processor, else the tokenizer
        # vLLM batches ``parallel`` sequences itself; the gate bounds what waits beyond that.
        self.gate = Gate(parallel, max_queue)
        self._requests_total = 0

    # lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the AsyncLLM: loads weights and profiles memory, so call it in the lifespan."""
        try:
            api = self._api_factory()
        except ImportError as exc:
            raise EngineError(f"vLLM is not installed (pip install 'vllm=={VLLM_VERSION}').") from exc
        kwargs: dict[str, Any] = {
            "model": self.path,
            "dtype": self.dtype,
            "gpu_memory_utilization": self.gpu_memory_utilization,
        }
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        kwargs.update(self.extra_engine_args)
        engine = api.async_llm.from_engine_args(api.engine_args(**kwargs))
        tokenizer = engine.get_tokenizer()
        if inspect.isawaitable(tokenizer):
            tokenizer = await tokenizer
        self._api, self._engine, self._tokenizer = api, engine, tokenizer
        self.structured = api.structured_outputs is not None
        self.vision = bool(getattr(getattr(engine, "model_config", None), "is_multimodal_model", False))
        self._chat = _processor(self.path) or tokenizer if self.vision else tokenizer
        model_len = getattr(getattr(engine, "model_config", None), "max_model_len", None)
        self.max_context = int(self.max_model_len or model_len or self.max_context)

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()

    async def health(self) -> bool:
        if self._engine is None:
            return False
        try:
            await self._engine.check_health()
        except Exception:
            return False
        return True

    async def abort(self, request_id: str) -> None:
        if self._engine is not None:
            await self._engine.abort(request_id)

    def stats(self) -> EngineStats:
        return self.gate.stats(
            requests_total=self._requests_total,
        )

    # generation ------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        return self.stream(request)

    def encode_prompt(self, request: GenerationRequest) -> list[int]:
        """Prompt token ids: the tokenizer's chat template for messages, else the raw text."""
        tok = self._tokenizer
        if tok is None:
            raise EngineError("The vLLM engine is not started.")
        if request.messages is not None:
            chat = [
                {"role": "system" if m.role == "developer" else m.role, "content": m.content} for m in request.messages
            ]
            text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            return list(tok.encode(text, add_special_tokens=False))
        if request.prompt is None:
            raise EngineError("A request needs either messages or a prompt.")
        return list(tok.encode(request.prompt))

    async def stream(
        self, request: GenerationRequest, *, json_schema: Mapping[str, Any] | None = None
    ) -> AsyncIterator[Delta]:
        """Like :meth:`generate`; ``json_schema`` constrains the output to that JSON schema."""
        api, engine = self._api, self._engine
        if api is None or engine is None:
            raise EngineError("The vLLM engine is not started.")
        if request.max_tokens is not None and request.max_tokens < 1:
            raise EngineError("max_tokens must be at least 1.")
        prompt, n_prompt = await self._prompt(request)
        budget = self.max_context - n_prompt
        if budget < 1 or (request.max_tokens is not None and request.max_tokens > budget):
            raise ContextLengthExceeded(self.max_context, n_prompt, request.max_tokens)
        params = api.sampling_params(**self._sampling_kwargs(api, request, budget, json_schema))

        await self.gate.acquire()
        outputs = engine.generate(prompt, params, request.request_id)
        self._requests_total += 1
        completion = 0
        finished = False
        try:
            async for out in outputs:
                n_prompt = len(getattr(out, "prompt_token_ids", None) or []) or n_prompt  # images expanded
                choice = out.outputs[0]
                completion += len(choice.token_ids)
                if out.finished:
                    finished = True
                    reason = _FINISH.get(str(choice.finish_reason), "stop")
                    yield Delta(choice.text, n_prompt, completion, reason)
                    return
                if choice.text:
                    yield Delta(choice.text, n_prompt, completion)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"vLLM failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.gate.release()
            if not finished:  # closed early or failed: make sure vLLM drops the request
                await outputs.aclose()
                await engine.abort(request.request_id)
        raise EngineError("vLLM ended the stream without finishing the request.")

    async def _prompt(self, request: GenerationRequest) -> tuple[dict[str, Any], int]:
        """vLLM's prompt and its size: token ids, or, with images, the templated text plus the
        images (decoded in a worker thread); vLLM's first output gives the expanded size."""
        if self.vision and any(m.images for m in request.messages or []):
            messages = request.messages or []
            chat = [
                {
                    "role": "system" if m.role == "developer" else m.role,
                    "content": [{"type": "image"} for _ in m.images] + [{"type": "text", "text": m.content}],
                }
                for m in messages
            ]
            text = self._chat.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            images = await asyncio.to_thread(_pictures, [image.data for m in messages for image in m.images])
            data = {"image": images[0] if len(images) == 1 else images}
            n_prompt = len(self._tokenizer.encode(text, add_special_tokens=False))  # before the images expand
            return {"prompt": text, "multi_modal_data": data}, n_prompt
        prompt_ids = self.encode_prompt(request)
        return {"prompt_token_ids": prompt_ids}, len(prompt_ids)

    def _sampling_kwargs(
        self,
        api: VLLMApi,
        request: GenerationRequest,
        budget: int,
        json_schema: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "n": 1,
            "temperature": max(request.temperature, 0.0),
            "top_p": request.top_p if 0 < request.top_p <= 1 else 1.0,
            "max_tokens": request.max_tokens or budget,
            "min_p": request.min_p,
            "repetition_penalty": request.repeat_penalty,
            "seed": request.seed,
            "stop": list(request.stop) or None,
            "output_kind": api.delta,
        }
        if request.top_k > 0:  # unset otherwise: "off" is spelled -1 or 0 depending on vLLM's version
            kwargs["top_k"] = request.top_k
        if json_schema is not None:
            if api.structured_outputs is None:
                raise EngineError("This vLLM build has no structured outputs.")
            kwargs["structured_outputs"] = api.structured_outputs(json=dict(json_schema))
        return kwargs


def _processor(path: str) -> Any:
    """The checkpoint's HF processor (its chat template knows image parts), or None."""
    try:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path)
    except Exception:  # noqa: BLE001 - no processor: the tokenizer's template serves
        return None


def _pictures(images: list[bytes]) -> list[Any]:
    """Cleaned image bytes as RGB PIL images, as vLLM's multi_modal_data takes them."""
    import io

    from PIL import Image as PILImage

    out = []
    for data in images:
        with PILImage.open(io.BytesIO(data)) as picture:
            out.append(picture.convert("RGB"))
    return out
