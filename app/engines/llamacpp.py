"""llama.cpp engine (llama-cpp-python's low-level bindings), the CPU path.

- One :class:`LlamaWeights` per GGUF file: the weights load once and are shared by every model
  entry on that file. Each running stream borrows its own context (a ``llama_context`` is not
  thread-safe), so streams never share state.
- Generation runs in a worker thread that feeds an asyncio queue; a cancel flag is checked
  between tokens, so a closed stream stops within one token.
- A :class:`CpuBudget` shared by all engines sizes each stream's thread count to the cores and
  to the number of streams running at once.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import logging
import os
import queue
import secrets
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from app.engines.chat_formats import Prompt
from app.engines.chat_template import Format, TemplateSource, format_for
from app.engines.llamacpp_vision import Media, Projector
from app.engines.stops import StopMatcher


def _llama() -> Any:
    import llama_cpp  # heavy: imported only when an engine loads

    # llama.cpp logs every load step to stderr through llama-cpp-python's logger; keep errors.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    return llama_cpp


PENALTY_LAST_N = 64  # tokens the repeat penalty looks back over (llama.cpp's default)


class CpuBudget:
    """Shares the machine's cores between the streams running at once, across all engines."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = cores or len(os.sched_getaffinity(0))
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def threads(self) -> int:
        return max(1, self.cores // max(1, self._active))

    @contextlib.contextmanager
    def stream(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1


class LlamaWeights:
    """A GGUF file loaded once, with a pool of contexts that streams borrow."""

    def __init__(self, path: str, *, n_ctx: int, n_batch: int = 256) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self._model: Any = None
        self._vocab: Any = None
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._contexts: list[Any] = []
        self._adapters: dict[str, Any] = {}  # LoRA GGUF path -> adapter (freed with the model)
        self._projectors: dict[str, Projector] = {}  # mmproj GGUF path -> projector (freed with the model)
        self._lock = threading.Lock()
        self.size_bytes = os.path.getsize(path)
        self.chat = TemplateSource(os.path.basename(path), "")  # read from the file at load

    def load(self) -> None:
        llama_cpp = _llama()
        if self._model is not None:
            return
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        model = llama_cpp.llama_model_load_from_file(self.path.encode(), params)
        if not model:
            raise EngineError(f"could not load GGUF weights from {os.path.basename(self.path)}")
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_ctx = min(self.n_ctx, llama_cpp.llama_model_n_ctx_train(model)) or self.n_ctx
        self.chat = self._chat_source()

    def _chat_source(self) -> TemplateSource:
        """The file's chat template and the texts of its BOS, EOS and end-of-turn tokens (metadata)."""
        llama_cpp = _llama()
        vocab, buf = self._vocab, ctypes.create_string_buffer(256)

        def text(token: int) -> str:
            return self.piece(token, buf, special=True).decode("utf-8", errors="replace") if token >= 0 else ""

        template = llama_cpp.llama_model_chat_template(self._model, None) or b""
        eos, eot = text(llama_cpp.llama_vocab_eos(vocab)), text(llama_cpp.llama_vocab_eot(vocab))
        return TemplateSource(
            name=os.path.basename(self.path),
            template=template.decode("utf-8", errors="replace"),
            bos_token=text(llama_cpp.llama_vocab_bos(vocab)),
            eos_token=eos,
            end_of_turn=tuple(dict.fromkeys(t for t in (eos, eot) if t)),
            adds_bos=bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        )

    def special_pieces(self, text: str) -> list[str]:
        """The control tokens in ``text`` (tokenized as a prompt is), as text, each once."""
        buf = ctypes.create_string_buffer(256)
        found = [self.piece(t, buf, special=True) for t in self.tokenize(text) if self.is_control(t)]
        return list(dict.fromkeys(p.decode("utf-8", errors="replace") for p in found if p))

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def tokenize(self, text: str) -> list[int]:
        llama_cpp = _llama()
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, size, True, True)
        if n < 0:  # the buffer was too small
            size = -n
            buf = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, size, True, True)
        return list(buf[:n])

    def piece(self, token: int, buf: Any, special: bool = False) -> bytes:
        llama_cpp = _llama()
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        return bytes(buf[:n]) if n > 0 else b""

    def n_vocab(self) -> int:
        return int(_llama().llama_vocab_n_tokens(self._vocab))

    def is_control(self, token: int) -> bool:
        return bool(_llama().llama_vocab_is_control(self._vocab, token))

    def is_eog(self, token: int) -> bool:
        return bool(_llama().llama_vocab_is_eog(self._vocab, token))

    def acquire(self) -> Any:
        """Borrow a context (thread-safe); one is created when none is free."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        llama_cpp = _llama()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.n_ctx
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.no_perf = True
        with self._lock:
            ctx = llama_cpp.llama_init_from_model(self._model, params)
            if not ctx:
                raise EngineError("could not create a llama.cpp context (out of memory?)")
            self._contexts.append(ctx)
        return _Slot(ctx)

    def release(self, slot: Any) -> None:
        self._free.put(slot)

    def load_adapter(self, lora: str) -> Any:
        """A LoRA adapter GGUF over these weights, loaded once and shared by every context."""
        llama_cpp = _llama()
        with self._lock:
            if lora not in self._adapters:
                adapter = llama_cpp.llama_adapter_lora_init(self._model, lora.encode())
                if not adapter:
                    raise EngineError(f"could not load the LoRA adapter {os.path.basename(lora)} over these weights")
                self._adapters[lora] = adapter
            return self._adapters[lora]

    def use_adapter(self, slot: Any, lora: str) -> None:
        """Put ``lora`` (or none, for "") on a borrowed context; its cached prompt is dropped on a switch."""
        if slot.lora == lora:
            return
        llama_cpp = _llama()
        if lora:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.load_adapter(lora))
            scales = (ctypes.c_float * 1)(1.0)
            rc = llama_cpp.llama_set_adapters_lora(slot.ctx, adapters, 1, scales)
        else:
            rc = llama_cpp.llama_set_adapters_lora(slot.ctx, None, 0, None)
        if rc != 0:
            raise EngineError(f"could not set the LoRA adapter {os.path.basename(lora) or '(none)'}")
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(slot.ctx), True)
        slot.tokens = []
        slot.lora = lora

    def projector(self, path: str, threads: int) -> Projector:
        """The multimodal projector ``path`` over these weights, loaded once (blocking)."""
        with self._lock:
            if path not in self._projectors:
                projector = Projector(path)
                projector.load(self._model, threads)
                self._projectors[path] = projector
            return self._projectors[path]

    def close(self) -> None:
        if self._model is None:
            return
        llama_cpp = _llama()
        with self._lock:
            for projector in self._projectors.values():
                projector.close()
            self._projectors.clear()
            for ctx in self._contexts:
                llama_cpp.llama_free(ctx)
            self._contexts.clear()
            self._adapters.clear()
            self._free = queue.SimpleQueue()
            llama_cpp.llama_model_free(self._model)
            self._model = None


class _Slot:
    """A context plus the tokens its KV cache holds, for prefix reuse between turns."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.tokens: list[int] = []
        self.lora = ""  # the LoRA adapter GGUF set on this context


class LlamaCppEngine(Engine):
    """One model entry (a decoding preset) over shared :class:`LlamaWeights`."""

    kind = "llama.cpp"

    def __init__(
        self,
        weights: LlamaWeights,
        budget: CpuBudget,
        *,
        chat_format: str | Format = "gemma",
        parallel: int = 2,
        max_queue: int = 16,
        lora: str = "",
        projector: Projector | None = None,
    ) -> None:
        # a format's name ("auto": the file's own template, checked here; ChatTemplateError names the file),
        # or a format the factory has resolved already
        self.format = (
            format_for(chat_format, weights.chat, weights.special_pieces)
            if isinstance(chat_format, str)
            else chat_format
        )
        self.weights = weights
        self.lora = lora  # a LoRA adapter GGUF applied over the shared weights ("" for none)
        self.projector = projector  # the mmproj that lets this model see images
        self.vision = projector is not None
        self.budget = budget
        self.max_context = weights.n_ctx
        self.parallel = parallel
        self.max_queue = max_queue
        self.gate = Gate(parallel, max_queue)
        self._requests = 0
        self._errors = 0
        self._executor = ThreadPoolExecutor(parallel, thread_name_prefix="llama")
        self._cancels: dict[str, threading.Event] = {}
        self.aborted = 0
        self.generated_tokens = 0

    def stats(self) -> EngineStats:
        return self.gate.stats(
            requests_total=self._requests,
            errors_total=self._errors,
            tokens_generated_total=self.generated_tokens,
            extra={"aborted_total": self.aborted},
        )

    def render(self, request: GenerationRequest) -> Prompt:
        if request.messages is not None:
            return self.format(request.messages)
        return Prompt(request.prompt or "")

    async def _prompt(self, request: GenerationRequest) -> tuple[Prompt, list[int], Media | None, int]:
        """(prompt, its tokens, its images' chunks, prompt size in tokens); images are tokenized
        by the projector in a worker thread, and the size counts their tokens."""
        if self.projector is None or not any(m.images for m in request.messages or []):
            prompt = self.render(request)
            tokens = self.weights.tokenize(prompt.text)
            return prompt, tokens, None, len(tokens)
        prompt = self.format(self.projector.messages(request.messages or []))
        images = [image.data for m in request.messages or [] for image in m.images]
        media = await asyncio.to_thread(self.projector.tokenize, prompt.text, images)
        return prompt, [], media, media.n_tokens

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        prompt, tokens, media, n_prompt = await self._prompt(request)
        n_ctx = self.max_context
        room = n_ctx - n_prompt
        wanted = request.max_tokens
        if room <= 0 or (wanted is not None and request.max_tokens_explicit and wanted > room):
            self._free(media)
            raise ContextLengthExceeded(n_ctx, n_prompt, wanted if request.max_tokens_explicit else None)
        max_tokens = min(wanted or room, room)
        stops = list(request.stop) + list(prompt.stop)
        try:
            await self.gate.acquire()
        except BaseException:
            self._free(media)
            raise
        self._requests += 1
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[Delta | BaseException] = asyncio.Queue()
        cancel = threading.Event()
        self._cancels[request.request_id] = cancel

        def push(item: Delta | BaseException) -> None:
            loop.call_soon_threadsafe(out.put_nowait, item)

        work = (tokens, max_tokens, stops, request, cancel, push, media)
        future = loop.run_in_executor(self._executor, self._work, *work)
        try:
            while True:
                item = await out.get()
                if isinstance(item, BaseException):
                    self._errors += 1
                    raise item
                yield item
                if item.finish_reason is not None:
                    break
        finally:
            cancel.set()
            self._cancels.pop(request.request_id, None)
            future.add_done_callback(lambda _f: self.gate.release())  # the slot is free once the thread is

    async def abort(self, request_id: str) -> None:
        event = self._cancels.get(request_id)
        if event is not None:
            event.set()

    async def health(self) -> bool:
        return self.weights.loaded

    async def close(self) -> None:
        for event in self._cancels.values():
            event.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- the worker thread -------------------------------------------------------------------

    def _work(
        self,
        tokens: list[int],
        max_tokens: int,
        stops: list[str],
        request: GenerationRequest,
        cancel: threading.Event,
        push: Any,
        media: Media | None = None,
    ) -> None:
        weights = self.weights
        try:
            slot = weights.acquire()
        except Exception as exc:  # noqa: BLE001 - reported to the client as an engine error
            self._free(media)
            push(EngineError(str(exc)))
            return
        try:
            weights.use_adapter(slot, self.lora)
            with self.budget.stream():
                self._generate(slot, tokens, max_tokens, stops, request, cancel, push, media)
        except Exception as exc:  # noqa: BLE001
            slot.tokens = []
            push(EngineError(f"generation failed: {exc}"))
        finally:
            self._free(media)
            weights.release(slot)

    def _generate(
        self,
        slot: _Slot,
        tokens: list[int],
        max_tokens: int,
        stops: list[str],
        request: GenerationRequest,
        cancel: threading.Event,
        push: Any,
        media: Media | None = None,
    ) -> None:
        llama_cpp = _llama()
        weights, ctx = self.weights, slot.ctx
        n_prompt = media.n_tokens if media is not None else len(tokens)
        threads = self.budget.threads()
        llama_cpp.llama_set_n_threads(ctx, threads, self.budget.cores)
        self._prefill_media(slot, media) if media is not None else self._prefill(slot, tokens)
        sampler = self._sampler(request, tokens)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        matcher = StopMatcher(stops)
        buf = ctypes.create_string_buffer(256)
        one = (llama_cpp.llama_token * 1)()
        produced = 0
        finish: FinishReason = "length"
        try:
            while produced < max_tokens:
                if cancel.is_set():
                    self.aborted += 1
                    push(Delta("", n_prompt, produced, "abort"))
                    return
                token = llama_cpp.llama_sampler_sample(sampler, ctx, -1)
                if weights.is_eog(token) or (
                    weights.is_control(token)
                    and weights.piece(token, buf, special=True).decode(errors="replace") in stops
                ):  # end of generation, or a turn marker such as Gemma's <start_of_turn>
                    finish = "stop"
                    break
                produced += 1
                self.generated_tokens += 1
                text, hit = matcher.feed(decoder.decode(weights.piece(token, buf)))
                if hit:
                    push(Delta(text, n_prompt, produced, "stop"))
                    return
                if text:  # sent before the next decode, so the client sees it a step sooner
                    push(Delta(text, n_prompt, produced))
                if produced < max_tokens:
                    one[0] = token
                    if threads != (now := self.budget.threads()):
                        threads = now
                        llama_cpp.llama_set_n_threads(ctx, threads, self.budget.cores)
                    if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1)) != 0:
                        raise EngineError("llama_decode failed")
                    slot.tokens.append(token)
            tail = matcher.flush() + decoder.decode(b"", final=True)
            push(Delta(tail, n_prompt, produced, finish))
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def _prefill(self, slot: _Slot, tokens: list[int]) -> None:
        """Decode the prompt, reusing the longest prefix already in this context's KV cache."""
        llama_cpp = _llama()
        ctx = slot.ctx
        memory = llama_cpp.llama_get_memory(ctx)
        common = 0
        for a, b in zip(slot.tokens, tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # the last prompt token is decoded for logits
        if common == 0 or not llama_cpp.llama_memory_seq_rm(memory, 0, common, -1):
            llama_cpp.llama_memory_clear(memory, True)
            common = 0
        slot.tokens = list(tokens[:common])
        todo = tokens[common:]
        step = self.weights.n_batch
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            arr = (llama_cpp.llama_token * len(chunk))(*chunk)
            if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(chunk))) != 0:
                slot.tokens = []
                raise EngineError("llama_decode failed on the prompt")
            slot.tokens.extend(chunk)

    def _free(self, media: Media | None) -> None:
        if media is not None and self.projector is not None:
            self.projector.free(media)

    def _prefill_media(self, slot: _Slot, media: Media) -> None:
        """Decode a prompt with images from position 0 (no prefix reuse: image chunks have no token ids)."""
        llama_cpp = _llama()
        assert self.projector is not None
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(slot.ctx), True)
        slot.tokens = []
        n_past = self.projector.evaluate(slot.ctx, media, self.weights.n_batch)
        slot.tokens = [-1] * n_past  # matches no prompt: the next request starts from a clear cache

    def _sampler(self, request: GenerationRequest, prompt: Sequence[int] = ()) -> Any:
        """llama.cpp's sampler chain in llama-server's order: repeat penalty, then greedy, or top-k,
        top-p, min-p, temperature and a seeded draw (a fresh unguessable seed when none is given)."""
        llama_cpp = _llama()
        add = llama_cpp.llama_sampler_chain_add
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if request.repeat_penalty != 1.0:
            penalties = llama_cpp.llama_sampler_init_penalties(
                self.weights.n_vocab(), PENALTY_LAST_N, request.repeat_penalty, 0.0, 0.0
            )
            add(chain, penalties)
            for token in prompt[-PENALTY_LAST_N:]:  # as llama-server: the prompt's last tokens count too
                llama_cpp.llama_sampler_accept(chain, token)
        if request.temperature <= 0:
            add(chain, llama_cpp.llama_sampler_init_greedy())
            return chain
        if request.top_k > 0:
            add(chain, llama_cpp.llama_sampler_init_top_k(request.top_k))
        if request.top_p < 1.0:
            add(chain, llama_cpp.llama_sampler_init_top_p(request.top_p, 1))
        if request.min_p > 0:
            add(chain, llama_cpp.llama_sampler_init_min_p(request.min_p, 1))
        add(chain, llama_cpp.llama_sampler_init_temp(request.temperature))
        seed = request.seed if request.seed is not None else secrets.randbits(32)
        add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain
