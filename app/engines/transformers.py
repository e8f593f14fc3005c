"""Serve a Hugging Face checkpoint folder with torch + transformers.

This is how the trainer's fine-tuned outputs get served, and how vision-language checkpoints
(a ``vision_config`` in config.json, e.g. LLaVA) are: through ``AutoProcessor``, the processor's
chat template with ``{"type": "image"}`` parts, and ``AutoModelForImageTextToText``; the
processor's pixel values go into the first forward pass. The engine runs a manual
token-by-token decode loop with a KV cache in a worker thread, one request at a time
per model (a lock queues the others), and feeds an asyncio queue through
``loop.call_soon_threadsafe``. A cancel flag is checked before every forward pass, so
closing the stream stops the work within one token.

torch and transformers are imported in :meth:`TransformersEngine.load`, never at import.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
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
from app.engines.stops import StopMatcher
from app.errors import Invalid

_LOCK_POLL_S = 0.05
_DEFAULT_CONTEXT = 2048


class IncrementalDetokenizer:
    """Turn a growing list of token ids into text pieces without splitting a character.

    Decodes a small window of ids and only releases text once it no longer ends in the
    replacement character that a half-finished multi-byte sequence decodes to. The window
    starts a few tokens into the prompt so leading-space rules match a full decode.
    """

    def __init__(self, decode: Callable[[list[int]], str], prompt_ids: Sequence[int]) -> None:
        self._decode = decode
        self._ids = list(prompt_ids)
        self._read = len(self._ids)
        self._prefix = max(self._read - 4, 0)

    def add(self, token_id: int) -> str:
        self._ids.append(token_id)
        return self._release(final=False)

    def finish(self) -> str:
        """Whatever is still held back (possibly an incomplete sequence, decoded as is)."""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        if self._read == len(self._ids):
            return ""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) and not final:
            return ""
        if after.endswith("\ufffd") and not final:
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]


@dataclass(slots=True)
class _Job:
    """One request's worker state, shared between the event loop and its thread."""

    request_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    generated: int = 0
    started: bool = False


class TransformersEngine(Engine):
    """A causal LM from a local safetensors checkpoint, on CUDA when available, else CPU."""

    kind = "transformers"
    streams = True
    vision = False

    def __init__(
        self,
        path: str,
        *,
        device: str | None = None,
        max_context: int | None = None,
        dtype: str = "auto",
        max_queue: int = 16,
    ) -> None:
        self.path = path
        self.device: str | None = device
        self.dtype = dtype
        self._max_context_arg = max_context
        self.max_context = max_context or _DEFAULT_CONTEXT
        self._model: Any = None
        self._tokenizer: Any = None
        self._processor: Any = None  # vision-language checkpoints: tokenizer + image processor
        self._eos_ids: frozenset[int] = frozenset()
        self._cache_kw = "past_key_values"  # renamed "cache" in newer transformers
        self._forward_extra: dict[str, int] = {}
        self._lock = threading.Lock()  # one decode at a time per model
        self._jobs_lock = threading.Lock()  # guards _jobs, touched by loop and workers
        self._jobs: dict[int, _Job] = {}  # keyed by id(job): request ids may repeat
        self.gate = Gate(1, max_queue)
        self._requests_total = 0
        self._tokens_total = 0
        self.last_generated = 0  # tokens the most recently finished job produced

    # lifecycle -------------------------------------------------------------------------

    def load(self) -> None:
        """Load tokenizer and weights (blocking: call it through ``asyncio.to_thread``)."""
        import torch
        from transformers import GenerationConfig

        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer, model = self._load_parts(torch)
        model.to(self.device)
        model.eval()
        forward_params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"
        # Only the last position's logits are needed: spares a (prompt x vocab) tensor.
        self._forward_extra = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}

        eos: set[int] = set()
        for source in (tokenizer.eos_token_id, getattr(model.config.get_text_config(), "eos_token_id", None)):
            eos.update(_as_ids(source))
        try:
            generation = GenerationConfig.from_pretrained(self.path, local_files_only=True)
            eos.update(_as_ids(generation.eos_token_id))
        except OSError:
            pass  # no generation_config.json
        self._eos_ids = frozenset(eos)
        self._tokenizer, self._model = tokenizer, model
        self.max_context = self._max_context_arg or _context_of(model.config.get_text_config(), tokenizer)

    def _load_parts(self, torch: Any) -> tuple[Any, Any]:
        """(tokenizer, model); for a vision-language checkpoint the processor too (``vision``)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = self._torch_dtype(torch)
        if not is_vision_checkpoint(self.path):
            tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            return tokenizer, AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype, local_files_only=True)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(self.path, local_files_only=True)
        if getattr(processor, "image_processor", None) is None:
            raise EngineError(f"{self.path} has a vision model but no image processor (processor_config.json)")
        model = AutoModelForImageTextToText.from_pretrained(self.path, dtype=dtype, local_files_only=True)
        self._processor, self.vision = processor, True
        return processor.tokenizer, model

    async def close(self) -> None:
        for job in self._snapshot():
            job.cancel.set()
        await asyncio.to_thread(self._release)

    def _release(self) -> None:
        with self._lock:  # waits for a running decode to notice its cancel flag
            self._model = None
            self._tokenizer = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is there if we ever loaded
            pass

    async def health(self) -> bool:
        return self._model is not None

    async def abort(self, request_id: str) -> None:
        for job in self._snapshot():
            if job.request_id == request_id:
                job.cancel.set()

    def stats(self) -> EngineStats:
        jobs = self._snapshot()  # a worker counts until its thread is done, even after a cancel
        running = sum(1 for j in jobs if j.started)
        return EngineStats(
            running=running,
            queue_depth=self.gate.waiting + len(jobs) - running,
            max_queue=self.gate.max_queue,
            requests_total=self._requests_total,
            tokens_generated_total=self._tokens_total,
        )

    # generation ------------------------------------------------------------------------

    def encode_inputs(self, request: GenerationRequest) -> tuple[list[int], dict[str, Any]]:
        """Token ids of the prompt, and the model's other inputs for the first forward pass
        (``pixel_values`` and the like, from the processor, for a vision-language model)."""
        if self._processor is None or request.messages is None:
            return self.encode_prompt(request), {}
        chat = [
            {
                "role": "system" if m.role == "developer" else m.role,
                "content": [{"type": "image"} for _ in m.images] + [{"type": "text", "text": self._plain(m.content)}],
            }
            for m in request.messages
        ]
        text = self._processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        images = [_picture(image.data) for m in request.messages for image in m.images]
        try:
            batch = self._processor(text=text, images=images or None, return_tensors="pt")
        except ValueError as exc:  # the image tokens do not match the images: the request's fault
            raise Invalid(f"The prompt could not be matched to its images: {exc}", param="messages") from None
        extras = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}
        return batch["input_ids"][0].tolist(), extras

    def _plain(self, text: str) -> str:
        """``text`` without the processor's image placeholder tokens (``processor.image_token``
        and the like): typed by a user they would ask for an image nobody sent."""
        for name in ("image_token", "boi_token", "eoi_token", "video_token"):
            token = getattr(self._processor, name, None)
            if isinstance(token, str) and token:
                text = text.replace(token, "")
        return text

    def encode_prompt(self, request: GenerationRequest) -> list[int]:
        """Token ids of the prompt: chat template for messages, raw text for completions."""
        tok = self._require_tokenizer()
        if request.messages is not None:
            chat = [
                {"role": "system" if m.role == "developer" else m.role, "content": m.content} for m in request.messages
            ]
            text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            return list(tok(text, add_special_tokens=False)["input_ids"])
        if request.prompt is None:
            raise EngineError("A request needs either messages or a prompt.")
        return list(tok(request.prompt)["input_ids"])

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """One decode runs at a time; ``max_queue`` more wait (no thread yet), the rest get a 503."""
        async with self.gate.slot(), aclosing(self._generate(request)) as stream:
            async for delta in stream:
                yield delta

    async def _generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        if any(m.images for m in request.messages or []):  # decoding images: off the event loop
            prompt_ids, extras = await asyncio.to_thread(self.encode_inputs, request)
        else:
            prompt_ids, extras = self.encode_inputs(request)
        n_prompt = len(prompt_ids)
        budget = self.max_context - n_prompt
        if request.max_tokens is not None and request.max_tokens < 1:
            raise EngineError("max_tokens must be at least 1.")
        if budget < 1 or (request.max_tokens is not None and request.max_tokens > budget):
            raise ContextLengthExceeded(self.max_context, n_prompt, request.max_tokens)
        max_tokens = request.max_tokens or budget

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        job = _Job(request.request_id)
        with self._jobs_lock:
            self._jobs[id(job)] = job
        self._requests_total += 1

        def emit(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # loop closed under us: the consumer is gone
                job.cancel.set()

        thread = threading.Thread(
            target=self._worker,
            args=(job, request, prompt_ids, max_tokens, emit, extras),
            name=f"transformers-{request.request_id}",
            daemon=True,
        )
        thread.start()
        generated = 0
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    text, generated = value
                    yield Delta(text, n_prompt, generated)
                elif kind == "end":
                    reason, generated = value
                    yield Delta("", n_prompt, generated, reason)
                    return
                else:
                    raise value
        finally:
            job.cancel.set()  # a no-op when the worker already ended; it deregisters itself

    def _worker(
        self,
        job: _Job,
        request: GenerationRequest,
        prompt_ids: list[int],
        max_tokens: int,
        emit: Callable[[str, Any], None],
        extras: dict[str, Any],
    ) -> None:
        """Thread body: wait for the model lock, then decode until a stop condition."""
        try:
            while not self._lock.acquire(timeout=_LOCK_POLL_S):
                if job.cancel.is_set():
                    emit("end", ("abort", 0))
                    return
            try:
                job.started = True
                reason = self._decode(job, request, prompt_ids, max_tokens, emit, extras)
                emit("end", (reason, job.generated))
            finally:
                self._lock.release()
        except Exception as exc:  # surfaced to the client as an EngineError
            emit("error", EngineError(f"Generation failed: {type(exc).__name__}: {exc}"))
        finally:
            self.last_generated = job.generated
            with self._jobs_lock:
                self._jobs.pop(id(job), None)
            job.done.set()

    def _decode(
        self,
        job: _Job,
        request: GenerationRequest,
        prompt_ids: list[int],
        max_tokens: int,
        emit: Callable[[str, Any], None],
        extras: dict[str, Any],
    ) -> FinishReason:
        import torch

        model, tok = self._model, self._tokenizer
        if model is None or tok is None:
            raise EngineError("The model is not loaded.")
        detok = IncrementalDetokenizer(lambda ids: tok.decode(ids, skip_special_tokens=True), prompt_ids)
        stops = StopMatcher(request.stop)
        sampler = _Sampler(torch, self.device or "cpu", request, prompt_ids)

        with torch.inference_mode():
            inputs = torch.tensor([prompt_ids], device=self.device)
            cache_kw = self._cache_kw
            kv_cache = None
            first = {k: _to(v, self.device, model.dtype) for k, v in extras.items()}  # pixel values etc.
            while True:
                if job.cancel.is_set():
                    return "abort"
                out = model(input_ids=inputs, use_cache=True, **{cache_kw: kv_cache}, **self._forward_extra, **first)
                first = {}
                kv_cache = getattr(out, cache_kw)
                token = sampler.pick(out.logits[0, -1])
                job.generated += 1
                self._tokens_total += 1
                if token in self._eos_ids:
                    reason: FinishReason = "stop"
                    break
                text, hit = stops.feed(detok.add(token))
                if text:
                    emit("text", (text, job.generated))
                if hit:
                    return "stop"
                if job.generated >= max_tokens:
                    reason = "length"
                    break
                inputs = torch.tensor([[token]], device=self.device)
        text, hit = stops.feed(detok.finish())
        tail = text if hit else text + stops.flush()
        if tail:
            emit("text", (tail, job.generated))
        return "stop" if hit else reason

    # helpers ---------------------------------------------------------------------------

    def _snapshot(self) -> list[_Job]:
        with self._jobs_lock:
            return list(self._jobs.values())

    def _require_tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise EngineError("The model is not loaded.")
        return self._tokenizer

    def _torch_dtype(self, torch: Any) -> Any:
        """ "auto": the checkpoint's own dtype on a GPU, float32 on the CPU."""
        if self.dtype == "auto":
            return "auto" if str(self.device).startswith("cuda") else torch.float32
        try:
            return getattr(torch, self.dtype)
        except AttributeError as exc:
            raise ValueError(f"Unknown torch dtype {self.dtype!r}") from exc


class _Sampler:
    """Greedy at temperature <= 0, else temperature, top-k, nucleus and min-p sampling from a
    seeded generator; a repeat penalty (as transformers' repetition_penalty) over the prompt and
    the tokens generated so far comes first."""

    def __init__(self, torch: Any, device: str, request: GenerationRequest, prompt_ids: Sequence[int] = ()) -> None:
        self._torch = torch
        self._temperature = request.temperature
        self._top_p = request.top_p
        self._top_k = request.top_k
        self._min_p = request.min_p
        self._penalty = request.repeat_penalty
        self._seen: set[int] = set(prompt_ids)
        self._generator = torch.Generator(device=device)
        if request.seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(request.seed)

    def pick(self, logits: Any) -> int:
        torch = self._torch
        logits = logits.float()
        if self._penalty != 1.0 and self._seen:
            ids = torch.tensor(sorted(self._seen), device=logits.device)
            score = logits[ids]
            logits[ids] = torch.where(score > 0, score / self._penalty, score * self._penalty)
        token = int(torch.argmax(logits).item()) if self._temperature <= 0 else self._draw(torch, logits)
        self._seen.add(token)
        return token

    def _draw(self, torch: Any, logits: Any) -> int:
        if 0 < self._top_k < logits.shape[-1]:
            kth = torch.topk(logits, self._top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits / self._temperature, dim=-1)
        if 0 < self._top_p < 1:
            sorted_probs, order = torch.sort(probs, descending=True)
            before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
            sorted_probs[before >= self._top_p] = 0.0  # keeps at least the top token
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        if self._min_p > 0:
            probs = probs.masked_fill(probs < self._min_p * probs.max(), 0.0)  # keeps the top token
        choice = torch.multinomial(probs, num_samples=1, generator=self._generator)
        return int(choice.item())


def is_vision_checkpoint(path: str) -> bool:
    """A checkpoint folder whose config names a vision tower (LLaVA, Qwen2-VL, Gemma 3, ...)."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("vision_config"), dict)


def _picture(data: bytes) -> Any:
    """A cleaned image's bytes as an RGB PIL image for the processor."""
    import io

    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as picture:
        return picture.convert("RGB")


def _to(value: Any, device: Any, dtype: Any) -> Any:
    """A processor output on the model's device; floating tensors (pixels) in the model's dtype."""
    if not hasattr(value, "to"):
        return value
    return value.to(device, dtype=dtype) if value.is_floating_point() else value.to(device)


def _as_ids(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else [int(v) for v in value]


def _context_of(config: Any, tokenizer: Any) -> int:
    """The context window from the model config, else a sane tokenizer limit."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10_000_000:
        return limit
    return _DEFAULT_CONTEXT
