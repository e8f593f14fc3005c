"""The one small engine interface every backend implements.

An engine turns a :class:`GenerationRequest` into an async stream of :class:`Delta` objects.
It declares what it can do as plain attributes and offers ``abort``, ``health`` and ``close``.
Backends live in their own modules and import their heavy libraries lazily.
"""

from __future__ import annotations

import abc
import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant"]
FinishReason = Literal["stop", "length", "abort", "error"]


@dataclass(frozen=True, slots=True)
class Image:
    """An image already checked and re-encoded by ``app.media.images`` (never a client's raw bytes)."""

    data: bytes
    mime: str  # image/png | image/jpeg | image/webp
    sha256: str  # hex digest of ``data``: the name it is stored under

    def data_url(self) -> str:
        import base64

        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    images: tuple[Image, ...] = ()  # only for engines with ``vision = True``


@dataclass(slots=True)
class GenerationRequest:
    """What to generate. Exactly one of ``messages`` (chat) and ``prompt`` (raw text) is set."""

    request_id: str
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    max_tokens: int | None = None  # None: up to the context window
    # False when max_tokens is a model default rather than the client's: then a long prompt
    # shortens the answer instead of failing with ContextLengthExceeded.
    max_tokens_explicit: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0  # 0: off
    repeat_penalty: float = 1.0  # 1: off
    stop: list[str] = field(default_factory=list)
    seed: int | None = None  # None: the engine draws a fresh unguessable one
    priority: int = 0  # admission order at a busy engine: higher first (see Gate); eval work asks for less


@dataclass(frozen=True, slots=True)
class Delta:
    """One step of a stream: new text plus exact running token counts.

    The final delta of a stream carries ``finish_reason`` (its text may be empty).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason | None = None


class EngineError(Exception):
    """An engine failed while generating. The message is safe to show to a client."""


class ContextLengthExceeded(EngineError):
    def __init__(self, max_context: int, prompt_tokens: int, max_tokens: int | None) -> None:
        self.max_context = max_context
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        requested = prompt_tokens + (max_tokens or 0)
        detail = f"{prompt_tokens} in the messages" + (f", {max_tokens} in the completion" if max_tokens else "")
        super().__init__(
            f"This model's maximum context length is {max_context} tokens. However, you "
            f"requested {requested} tokens ({detail}). Please reduce the length of the "
            "messages or completion."
        )


class EngineOverloaded(EngineError):
    """The engine's queue is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__("The model is overloaded with requests. Please retry shortly.")


@dataclass(frozen=True, slots=True)
class EngineStats:
    """One shape of live numbers for every engine: what /admin and /metrics read."""

    running: int = 0  # streams generating now
    queue_depth: int = 0  # requests waiting for a free stream
    max_queue: int = 0  # the most that may wait before EngineOverloaded (503)
    requests_total: int = 0
    errors_total: int = 0
    tokens_generated_total: int = 0
    extra: Mapping[str, float | int] = field(default_factory=dict)  # backend-specific counters


# Admission priorities (higher is admitted first): people waiting for an answer (battles, /v1)
# come before automatic evaluation on the same engine.
HUMAN_PRIORITY = 0
EVAL_PRIORITY = -10
# The priority a Gate admits with when its caller names none: ``app.registry.generate.start`` sets
# it from ``GenerationRequest.priority`` around the engine's admission, so no backend has to.
ADMISSION_PRIORITY: ContextVar[int] = ContextVar("admission_priority", default=HUMAN_PRIORITY)


class Gate:
    """Admission for one engine: ``parallel`` streams run, ``max_queue`` more wait, the rest are
    refused at once with :class:`EngineOverloaded` (503 with Retry-After), so work is bounded.

    A freed slot goes to the waiter with the highest priority, first come first served among
    equals, so a person's request overtakes queued eval work."""

    def __init__(self, parallel: int, max_queue: int, retry_after: int = 2) -> None:
        if parallel < 1 or max_queue < 0:
            raise ValueError("parallel must be >= 1 and max_queue >= 0")
        self.parallel = parallel
        self.max_queue = max_queue
        self.retry_after = retry_after
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # heap of (-priority, arrival, future)
        self._arrivals = itertools.count()
        self.running = 0
        self.waiting = 0

    def stats(self, **counters: Any) -> EngineStats:
        """The engine's :class:`EngineStats`: this gate's live numbers plus the engine's ``counters``."""
        return EngineStats(running=self.running, queue_depth=self.waiting, max_queue=self.max_queue, **counters)

    def full(self) -> bool:
        return self.running + self.waiting >= self.parallel + self.max_queue

    async def acquire(self, priority: int | None = None) -> None:
        """Wait for a stream slot, or raise :class:`EngineOverloaded` when the queue is full.
        ``priority`` defaults to the caller's :data:`ADMISSION_PRIORITY`."""
        if self.full():
            raise EngineOverloaded(self.retry_after)
        if self.running < self.parallel and not self._waiters:
            self.running += 1
            return
        rank = -(ADMISSION_PRIORITY.get() if priority is None else priority)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (rank, next(self._arrivals), future)
        heapq.heappush(self._waiters, entry)
        self.waiting += 1
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot just as the caller gave up: pass it on
            elif entry in self._waiters:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise
        finally:
            self.waiting -= 1

    def release(self) -> None:
        """Free a slot: hand it to the most urgent waiter (it stays running), or give it back."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self.running -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


class Engine(abc.ABC):
    """Base class for engines. Capabilities are plain class or instance attributes."""

    kind: str = "base"
    streams: bool = True
    vision: bool = False
    max_context: int = 2048

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Stream deltas for ``request``. Closing the iterator cancels the generation.

        Raises :class:`ContextLengthExceeded` or :class:`EngineOverloaded` before the first
        delta when the request cannot start.
        """

    async def abort(self, request_id: str) -> None:  # noqa: B027 - optional to override
        """Stop a running request early; a no-op for unknown ids."""

    async def health(self) -> bool:
        return True

    async def close(self) -> None:  # noqa: B027 - optional to override
        """Release weights, threads and connections."""

    def stats(self) -> EngineStats:
        """Live numbers for admin pages and metrics (queue depth, running streams...)."""
        return EngineStats()
