"""The model registry: which models exist, their state, and the engine serving each.

It builds engines from :class:`ModelSpec` entries, loads them one after another, and shares one
set of llama.cpp weights between entries on the same GGUF file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from app.engines.base import Engine
from app.engines.llamacpp import CpuBudget, LlamaCppEngine, LlamaWeights
from app.engines.scripted import ScriptedEngine
from app.modelspec import ModelSpec

log = logging.getLogger(__name__)

State = Literal["active", "paused", "down"]


@dataclass
class ModelEntry:
    spec: ModelSpec
    engine: Engine | None = None
    state: State = "active"
    error: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def loaded(self) -> bool:
        return self.engine is not None

    @property
    def engine_kind(self) -> str:
        """The engine actually serving this model (``auto`` resolved)."""
        return self.engine.kind if self.engine is not None else self.spec.engine


class UnknownModel(KeyError):
    pass


class Registry:
    def __init__(self, *, budget: CpuBudget, parallel: int = 2, max_queue: int = 16) -> None:
        self.budget = budget
        self.parallel = parallel
        self.max_queue = max_queue
        self.entries: dict[str, ModelEntry] = {}
        self._weights: dict[str, LlamaWeights] = {}
        self._lock = asyncio.Lock()

    # -- reading ------------------------------------------------------------------------------

    def get(self, model_id: str) -> ModelEntry:
        try:
            return self.entries[model_id]
        except KeyError:
            raise UnknownModel(model_id) from None

    def list(self) -> list[ModelEntry]:
        return list(self.entries.values())

    def servable(self) -> list[ModelEntry]:
        """Models that can answer now: loaded and not down."""
        return [e for e in self.entries.values() if e.loaded and e.state != "down"]

    @property
    def ready(self) -> bool:
        return bool(self.entries) and all(
            e.loaded or e.state != "active" for e in self.entries.values()
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, specs: list[ModelSpec]) -> None:
        """Register and load every spec, one after another (a failure marks that model down)."""
        for spec in specs:
            self.entries[spec.id] = ModelEntry(spec)
        for spec in specs:
            await self.load(spec.id)

    async def load(self, model_id: str) -> ModelEntry:
        entry = self.get(model_id)
        async with self._lock:
            if entry.engine is None:
                try:
                    entry.engine = await self._build(entry.spec)
                    entry.error = ""
                    if entry.state == "down":
                        entry.state = "active"
                except Exception as exc:  # noqa: BLE001 - a broken model must not stop the arena
                    log.error("model %s failed to load: %s", model_id, exc)
                    entry.state, entry.error = "down", str(exc)
        return entry

    async def unload(self, model_id: str) -> None:
        entry = self.get(model_id)
        async with self._lock:
            engine, entry.engine = entry.engine, None
            if engine is not None:
                await engine.close()
            self._drop_unused_weights()

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.engine is not None:
                await entry.engine.close()
                entry.engine = None
        for weights in self._weights.values():
            weights.close()
        self._weights.clear()

    # -- building engines ---------------------------------------------------------------------

    async def _build(self, spec: ModelSpec) -> Engine:
        if spec.engine == "scripted":
            return ScriptedEngine(spec.script or None, max_context=spec.context_length)
        if spec.engine == "llama.cpp":
            return await self._build_llamacpp(spec)
        raise ValueError(f"engine {spec.engine!r} is not available in this build")

    async def _build_llamacpp(self, spec: ModelSpec) -> Engine:
        path = await asyncio.to_thread(spec.resolved_weights)
        weights = self._weights.get(path)
        if weights is None:
            n_ctx = max(
                s.context_length
                for s in (e.spec for e in self.entries.values())
                if s.engine == "llama.cpp" and s.weights == spec.weights
            )
            weights = LlamaWeights(path, n_ctx=n_ctx)
            await asyncio.to_thread(weights.load)
            self._weights[path] = weights
        engine = LlamaCppEngine(
            weights,
            self.budget,
            chat_format=spec.chat_format,
            parallel=self.parallel,
            max_queue=self.max_queue,
        )
        engine.max_context = min(spec.context_length, weights.n_ctx)
        return engine

    def _drop_unused_weights(self) -> None:
        used = {
            id(e.engine.weights)
            for e in self.entries.values()
            if isinstance(e.engine, LlamaCppEngine)
        }
        for path, weights in list(self._weights.items()):
            if id(weights) not in used:
                weights.close()
                del self._weights[path]
