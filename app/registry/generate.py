"""Starting a generation on a named model: the core both APIs call.

Errors that stop a request before its first token become domain errors (:mod:`app.errors`), so
the routes can answer with a proper HTTP status instead of a broken stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import cast

from app.engines.base import (
    ADMISSION_PRIORITY,
    ContextLengthExceeded,
    Delta,
    EngineError,
    EngineOverloaded,
    GenerationRequest,
)
from app.errors import Busy, Failed, Invalid, NotFound, Unavailable
from app.metrics import Metrics
from app.registry.core import ModelEntry, Registry, UnknownModel

log = logging.getLogger(__name__)


@dataclass
class Started:
    entry: ModelEntry
    first: Delta
    rest: AsyncGenerator[Delta, None]


async def resolve(models: Registry, model_id: str) -> ModelEntry:
    """The model's entry, loaded (on demand after a keep-alive unload); NotFound or Unavailable."""
    try:
        entry = await models.ensure_loaded(model_id)
    except UnknownModel as exc:
        raise NotFound(exc.message, param="model", code="model_not_found") from None
    if entry.engine is None or entry.state == "down":
        # Why, in our words: entry.error holds the engine's own message, which is for the admin page.
        if entry.error.startswith("down after"):
            why = "is down after consecutive failures"
        else:
            why = "failed to load" if entry.error else "is not loaded right now"
        raise Unavailable(
            f"The model `{model_id}` {why}; try again later.",
            retry_after=5,
            param="model",
            code="model_unavailable",
        )
    return entry


async def _measured(
    models: Registry, metrics: Metrics, entry: ModelEntry, gen: AsyncGenerator[Delta, None], started: float
) -> AsyncGenerator[Delta, None]:
    model_id, stats = entry.id, entry.stats
    stats.requests += 1
    stats.running += 1
    last: Delta | None = None
    try:
        async for delta in gen:
            if last is None:
                metrics.ttft.labels(model_id).observe(time.perf_counter() - started)
            last = delta
            if delta.finish_reason in ("stop", "length"):
                models.succeeded(model_id)
            yield delta
    except (ContextLengthExceeded, EngineOverloaded):
        raise
    except EngineError as exc:
        stats.errors += 1
        models.failed(model_id, str(exc) or type(exc).__name__)
        raise
    finally:
        stats.running -= 1
        stats.last_used = time.monotonic()
        await gen.aclose()
        if last is not None:
            stats.tokens += last.completion_tokens
            stats.busy_seconds += time.perf_counter() - started
            metrics.count_tokens(model_id, last.prompt_tokens, last.completion_tokens)
            if last.finish_reason is None or last.finish_reason == "abort":
                metrics.aborts.labels(model_id).inc()


async def start(models: Registry, metrics: Metrics, model_id: str, request: GenerationRequest) -> Started:
    """Resolve the model, start generating and wait for the first delta."""
    entry = await resolve(models, model_id)
    assert entry.engine is not None
    check_vision(entry, request)
    stream = cast(AsyncGenerator[Delta, None], entry.engine.generate(request))
    gen = _measured(models, metrics, entry, stream, time.perf_counter())
    admission = ADMISSION_PRIORITY.set(request.priority)  # the engine's gate admits by it
    try:
        first = await anext(gen)
    except ContextLengthExceeded as exc:
        await gen.aclose()
        raise Invalid(str(exc), param="messages", code="context_length_exceeded") from exc
    except EngineOverloaded as exc:
        await gen.aclose()
        raise Busy(str(exc), retry_after=exc.retry_after, code="overloaded") from exc
    except EngineError as exc:  # its message may hold internals: logged, and a generic one sent
        await gen.aclose()
        log.warning("model %s failed before its first token: %s", model_id, exc)
        raise Failed(f"The model `{model_id}` failed to answer; please retry.", code="engine_error") from exc
    except StopAsyncIteration:
        raise Failed("The engine returned nothing.") from None
    finally:
        ADMISSION_PRIORITY.reset(admission)
    return Started(entry, first, gen)


def check_vision(entry: ModelEntry, request: GenerationRequest) -> None:
    """An image for a model that cannot see is the client's mistake: 400 naming the message."""
    for index, message in enumerate(request.messages or []):
        if message.images and not (entry.spec.vision and entry.engine is not None and entry.engine.vision):
            raise Invalid(
                f"The model `{entry.id}` does not accept images; pick a vision model (vision = true).",
                param=f"messages[{index}].content",
                code="model_not_vision",
            )


SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens")


def request_defaults(entry: ModelEntry, **given: object) -> dict[str, object]:
    """Fill unset sampling fields (:data:`SAMPLING`) from the model's generation defaults."""
    defaults = entry.spec.defaults
    return {name: given[name] if given.get(name) is not None else getattr(defaults, name) for name in SAMPLING}
