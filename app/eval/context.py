"""What an eval run works with, and one generation at eval priority.

An :class:`EvalContext` holds the live registry, the store and the metrics: the server's own (the
``/admin`` background job) or a set opened in-process for the CLI by :func:`open_context`. Every
generation goes through ``app.registry.generate.start`` like a battle's, with
``priority=EVAL_PRIORITY`` so a person waiting on the same engine is admitted first, and at most
``concurrency`` eval generations run per model.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from app.engines.base import EVAL_PRIORITY, ChatMessage, GenerationRequest
from app.errors import Busy, Failed, NotFound, shown
from app.metrics import Metrics
from app.registry import generate
from app.registry.core import ModelEntry, Registry
from app.registry.spec import ModelSpec, allowed_remote_hosts, check_api_key_env, load_models
from app.settings import Settings
from app.store.db import Store

UNFINISHED = ("abort", "error")  # finish reasons of a generation that did not complete
BUSY_RETRIES = 60  # an engine whose queue is full is asked again, waiting its Retry-After


@dataclass(frozen=True)
class Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str


@dataclass
class EvalContext:
    models: Registry
    store: Store
    metrics: Metrics
    templates: Path | None = None  # a folder of the user's judge templates (pairwise.txt, ...)
    concurrency: int = 0  # eval generations at once per model; 0: the registry's ``parallel``
    judge_max_tokens: int = 1024
    max_tokens: int | None = None  # caps the answers (else each model's default)
    _limits: dict[str, asyncio.Semaphore] = field(default_factory=dict, repr=False)
    _answers: dict[str, asyncio.Future[object]] = field(default_factory=dict, repr=False)

    def limit(self, model_id: str) -> asyncio.Semaphore:
        if model_id not in self._limits:
            self._limits[model_id] = asyncio.Semaphore(max(1, self.concurrency or self.models.parallel))
        return self._limits[model_id]

    def entry(self, model_id: str) -> ModelEntry:
        return self.models.get(model_id)


async def generate_text(
    ctx: EvalContext,
    model_id: str,
    messages: Sequence[ChatMessage],
    *,
    temperature: float,
    top_p: float,
    max_tokens: int | None,
    top_k: int = 0,
    min_p: float = 0.0,
    repeat_penalty: float = 1.0,
) -> Generated:
    """One whole answer from ``model_id``, admitted after people's requests; a full queue is
    waited out (domain errors otherwise propagate: the caller counts the failure)."""
    async with ctx.limit(model_id):
        for attempt in range(BUSY_RETRIES + 1):
            request = GenerationRequest(
                request_id=f"eval-{uuid.uuid4().hex[:16]}",
                messages=list(messages),
                max_tokens=max_tokens,
                max_tokens_explicit=False,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                min_p=min_p,
                repeat_penalty=repeat_penalty,
                priority=EVAL_PRIORITY,
            )
            began = time.perf_counter()
            try:
                started = await generate.start(ctx.models, ctx.metrics, model_id, request)
            except Busy as exc:
                if attempt == BUSY_RETRIES:
                    raise
                await asyncio.sleep(min(exc.retry_after or 1, 5))
                continue
            return await _collect(started, began)
    raise AssertionError("unreachable")


async def _collect(started: generate.Started, began: float) -> Generated:
    pieces, last = [started.first.text], started.first
    try:
        async for delta in started.rest:
            pieces.append(delta.text)
            last = delta
    finally:
        await started.rest.aclose()
    if last.finish_reason in UNFINISHED:
        # an aborted or failed generation is not an answer: the caller counts a failure and stores
        # nothing, so the next run asks again
        raise Failed(f"the generation ended with finish_reason {last.finish_reason!r}")
    return Generated(
        "".join(pieces),
        last.prompt_tokens,
        last.completion_tokens,
        time.perf_counter() - began,
        last.finish_reason or "",
    )


async def _register(registry: Registry, store: Store, specs: list[ModelSpec], wanted: Sequence[str]) -> None:
    """Only the models a run names, as the server would see them (runtime changes merged)."""
    by_id = {s.id: s for s in specs}
    for row in await store.fetchall("SELECT * FROM registry ORDER BY updated"):
        if row["removed"]:
            by_id.pop(row["id"], None)
        elif row["spec"]:
            try:
                by_id[row["id"]] = ModelSpec.model_validate_json(row["spec"])
            except ValidationError:
                continue
    missing = [m for m in wanted if m not in by_id]
    if missing:
        known = ", ".join(sorted(by_id)) or "none"
        raise NotFound(f"unknown model(s): {shown(', '.join(missing))} (known: {known})", param="model")
    registry.store = store
    for model_id in dict.fromkeys(wanted):
        registry.entries[model_id] = ModelEntry(by_id[model_id])


@asynccontextmanager
async def open_context(settings: Settings, model_ids: Sequence[str], **options: object) -> AsyncIterator[EvalContext]:
    """A registry of just ``model_ids`` over the settings' models file and database, in this
    process (no server needed); models load on first use. Closed on exit."""
    from app.engines.llamacpp import CpuBudget
    from app.engines.llamacpp_check import check_gguf

    specs = load_models(settings.models)
    for spec in specs:
        check_api_key_env(spec, settings.remote_env_prefix)
    registry = Registry(
        budget=CpuBudget(settings.threads or None),
        parallel=settings.parallel,
        max_queue=settings.max_queue,
        model_dirs=[Path(d) for d in settings.model_dir],
        check_gguf=check_gguf if settings.check_engines else None,
        probe_interval=0,
        remote_hosts=allowed_remote_hosts(specs, settings.remote_hosts),
    )
    registry.factory.env_prefix = settings.remote_env_prefix
    store = Store(settings.db)
    await store.open()
    try:
        await _register(registry, store, specs, model_ids)
        yield EvalContext(registry, store, Metrics(), **options)  # type: ignore[arg-type]
    finally:
        await registry.close()
        await store.close()
