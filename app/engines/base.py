"""The one small engine interface every backend implements.

An engine turns a :class:`GenerationRequest` into an async stream of :class:`Delta` objects.
It declares what it can do as plain attributes and offers ``abort``, ``health`` and ``close``.
Backends live in their own modules and import their heavy libraries lazily.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
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
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


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


class Gate:
    """Admission for one engine: ``parallel`` streams run, ``max_queue`` more wait, the rest are
    refused at once with :class:`EngineOverloaded` (503 with Retry-After), so work is bounded."""

    def __init__(self, parallel: int, max_queue: int, retry_after: int = 2) -> None:
        if parallel < 1 or max_queue < 0:
            raise ValueError("parallel must be >= 1 and max_queue >= 0")
        self.parallel = parallel
        self.max_queue = max_queue
        self.retry_after = retry_after
        self._slots = asyncio.Semaphore(parallel)
        self.running = 0
        self.waiting = 0

    def stats(self, **counters: Any) -> EngineStats:
        """The engine's :class:`EngineStats`: this gate's live numbers plus the engine's ``counters``."""
        return EngineStats(running=self.running, queue_depth=self.waiting, max_queue=self.max_queue, **counters)

    def full(self) -> bool:
        return self.running + self.waiting >= self.parallel + self.max_queue

    async def acquire(self) -> None:
        """Wait for a stream slot, or raise :class:`EngineOverloaded` when the queue is full."""
        if self.full():
            raise EngineOverloaded(self.retry_after)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._slots.release()

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
