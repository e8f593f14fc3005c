"""A scripted engine: replays queued replies word by word and records what it was asked.

With ``vision`` it takes images, and ``{images}`` in a reply becomes the SHA-256 of each image
the request carried, so a test can see which image arrived where.

A first-class engine for orchestration tests (and for demos without weights); never the only
test of a feature.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

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


class ScriptedEngine(Engine):
    kind = "scripted"

    def __init__(
        self,
        replies: list[str] | None = None,
        *,
        delay: float = 0.0,
        fail_after: int | None = None,
        max_context: int = 4096,
        parallel: int = 8,
        max_queue: int = 64,
        vision: bool = False,
    ) -> None:
        self.vision = vision  # takes images; a reply's "{images}" lists the hashes it was shown
        self.replies = list(replies or ["Hello from the scripted engine."])
        self.delay = delay
        self.fail_after = fail_after
        self.max_context = max_context
        self.requests: list[GenerationRequest] = []
        self.aborted: list[str] = []
        self._turn = 0
        self.gate = Gate(parallel, max_queue)
        self.generated = 0

    def stats(self) -> EngineStats:
        return self.gate.stats(
            requests_total=len(self.requests),
            tokens_generated_total=self.generated,
        )

    def queue(self, *replies: str) -> None:
        self.replies.extend(replies)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        async with self.gate.slot(), aclosing(self._generate(request)) as stream:
            async for delta in stream:
                yield delta

    async def _generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        self.requests.append(request)
        reply = self.replies[self._turn % len(self.replies)]
        if "{images}" in reply:
            shown = [image.sha256 for m in request.messages or [] for image in m.images]
            reply = reply.replace("{images}", " ".join(shown) or "(no images)")
        self._turn += 1
        pieces = re.findall(r"\S+\s*|\s+", reply) or [""]
        prompt_tokens = sum(len(m.content.split()) for m in request.messages or []) or len(
            (request.prompt or "").split()
        )
        explicit = request.max_tokens if request.max_tokens_explicit else None
        if prompt_tokens + (explicit or 0) >= self.max_context:
            raise ContextLengthExceeded(self.max_context, prompt_tokens, explicit)
        limit = request.max_tokens or len(pieces)
        done = 0
        try:
            for index, piece in enumerate(pieces[:limit]):
                if self.fail_after is not None and index >= self.fail_after:
                    raise EngineError("scripted failure")
                if self.delay:
                    await asyncio.sleep(self.delay)
                done = index + 1
                self.generated += 1
                last = done == min(limit, len(pieces))
                reason: FinishReason | None = None
                if last:
                    reason = "length" if limit < len(pieces) else "stop"
                yield Delta(piece, prompt_tokens, done, reason)
        except GeneratorExit:
            self.aborted.append(request.request_id)
            raise
        except asyncio.CancelledError:
            self.aborted.append(request.request_id)
            raise
