"""The model registry: which models exist, their state, and the engine serving each.

The models file seeds it; runtime changes (add, edit, pause, remove) are kept in the database
and merged over the file by model id at start-up. Models load and unload without a restart;
with a keep-alive an idle model is unloaded and loaded again on its next request; a memory
budget refuses a load that would not fit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import ValidationError

from app.engines.base import ChatMessage, Engine, EngineError, EngineStats, GenerationRequest
from app.engines.llamacpp import CpuBudget
from app.errors import Conflict, DomainError, Invalid, NoRoom, NotFound, shown
from app.registry.factory import (
    MB,
    EngineFactory,
    GgufCheck,
    WeightsError,
    check_weights,
    estimate_memory,
    gpu_shortfall,
    resolve_kind,
)
from app.registry.spec import ModelSpec, check_remote_host
from app.store.db import Store

log = logging.getLogger(__name__)

State = Literal["active", "paused", "down"]
STATES = ("active", "paused", "down")


@dataclass
class ModelStats:
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    busy_seconds: float = 0.0
    running: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.busy_seconds if self.busy_seconds > 0 else 0.0


@dataclass
class ModelEntry:
    spec: ModelSpec
    engine: Engine | None = None
    state: State = "active"
    error: str = ""
    memory: int = 0
    created: int = field(default_factory=lambda: int(time.time()))
    stats: ModelStats = field(default_factory=ModelStats)
    failures: int = 0  # consecutive failed generations (or loads); reset by a success
    auto_down: bool = False  # taken down by its failures (a probe may bring it back), not by an admin

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def loaded(self) -> bool:
        return self.engine is not None

    @property
    def engine_kind(self) -> str:
        """The engine actually serving this model (``auto`` resolved)."""
        return self.engine.kind if self.engine is not None else resolve_kind(self.spec)

    def describe(self) -> dict[str, Any]:
        engine_stats = self.engine.stats() if self.engine is not None else EngineStats()
        return {
            "id": self.id,
            "name": self.spec.display_name,
            "engine": self.engine_kind,
            "state": self.state,
            "loaded": self.loaded,
            "error": self.error or None,
            "weight": self.spec.weight,
            "battle": self.spec.battle,  # drawn into anonymous battles (while active)
            "memory_mb": round(self.memory / MB, 1),
            "queue_depth": engine_stats.queue_depth,
            "max_queue": engine_stats.max_queue,
            "running": self.stats.running,
            "requests": self.stats.requests,
            "errors": self.stats.errors,
            "tokens_per_second": round(self.stats.tokens_per_second, 1),
            "capabilities": {
                "streaming": self.engine.streams if self.engine else True,
                "vision": self.engine.vision if self.engine else False,
                "max_context": self.engine.max_context if self.engine else self.spec.context_length,
            },
            "metadata": self.spec.metadata.model_dump(),
            "spec": self.spec.model_dump(exclude_defaults=True),
        }


class UnknownModel(NotFound):
    def __init__(self, model_id: str) -> None:
        super().__init__(f"The model `{shown(model_id)}` does not exist.", param="id")
        self.model_id = model_id


def check_remote_change(
    old: ModelSpec, new: ModelSpec, changes: dict[str, Any], allowed: Collection[str] | None
) -> None:
    """A remote model's new base_url is on an allowed host, and comes with its key named again:
    the engine sends the key to whatever base_url says, so a new host must not inherit it."""
    if new.base_url == old.base_url:
        return
    check_remote_host(new, allowed)
    if (old.api_key_env or new.api_key_env) and "api_key_env" not in changes:
        raise Invalid(
            "Changing base_url sends the model's API key to the new address: send api_key_env again with it "
            '("" for no key).',
            param="api_key_env",
        )


class Registry:
    def __init__(
        self,
        *,
        budget: CpuBudget,
        parallel: int = 2,
        max_queue: int = 16,
        model_dirs: list[Path] | None = None,
        memory_budget: int = 0,
        keep_alive: float = 0.0,
        check_gguf: GgufCheck | None = None,
        failure_limit: int = 3,
        probe_interval: float = 15.0,
        remote_hosts: Collection[str] | None = None,
    ) -> None:
        self.failure_limit = failure_limit  # consecutive failures that take a model down
        self.probe_interval = probe_interval  # first wait before probing a downed model (doubles)
        self.probe_timeout = 30.0  # a probe that has not finished by then failed
        self._probes: dict[str, asyncio.Task[None]] = {}
        self.factory = EngineFactory(
            budget, parallel=parallel, max_queue=max_queue, check_gguf=check_gguf, remote_hosts=remote_hosts
        )
        self.parallel = parallel
        self.model_dirs = model_dirs or []
        self.memory_budget = memory_budget
        self.keep_alive = keep_alive
        self.entries: dict[str, ModelEntry] = {}
        self.store: Store | None = None
        self._lock = asyncio.Lock()

    # -- reading ------------------------------------------------------------------------------

    def get(self, model_id: str) -> ModelEntry:
        try:
            return self.entries[model_id]
        except KeyError:
            raise UnknownModel(model_id) from None

    def all(self) -> list[ModelEntry]:
        return list(self.entries.values())

    def servable(self) -> list[ModelEntry]:
        """Models that can answer: not down, and loaded or loadable on demand."""
        return [e for e in self.entries.values() if e.state != "down" and (e.loaded or not e.error)]

    @property
    def ready(self) -> bool:
        return bool(self.entries) and all(
            e.loaded or e.state != "active" or self.keep_alive for e in self.entries.values()
        )

    def memory_in_use(self) -> int:
        return sum(e.memory for e in self.entries.values() if e.loaded)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, specs: list[ModelSpec], store: Store | None = None) -> None:
        """Register the file's specs merged with the stored runtime changes, then load them one
        after another (a model that fails to load is marked down; the arena goes on)."""
        self.store = store
        merged = {s.id: (s, "active") for s in specs}
        if store is not None:
            for row in await store.fetchall("SELECT * FROM registry ORDER BY updated"):
                if row["removed"]:
                    merged.pop(row["id"], None)
                    continue
                try:
                    spec = ModelSpec.model_validate_json(row["spec"]) if row["spec"] else merged[row["id"]][0]
                except (ValidationError, KeyError):
                    log.warning("ignoring unusable stored change for model %s", row["id"])
                    continue
                merged[row["id"]] = (spec, row["state"] or "active")
        for spec, state in merged.values():
            self.entries[spec.id] = ModelEntry(spec, state=state)  # type: ignore[arg-type]
        for entry in list(self.entries.values()):
            await self.load(entry.id)

    async def load(self, model_id: str, *, strict: bool = False) -> ModelEntry:
        """Load a model now. A failure marks it down, or with ``strict`` raises a DomainError
        (NoRoom when it does not fit, Invalid otherwise)."""
        entry = self.get(model_id)
        async with self._lock:
            if entry.engine is not None:
                return entry
            try:
                path = await asyncio.to_thread(entry.spec.resolved_weights) if entry.spec.weights else ""
                need = (
                    0
                    if (path and self.factory.shares_weights(path))
                    else (estimate_memory(entry.spec, path, self.parallel) if path else 0)
                )
                self._check_budget(entry, need)
                entry.engine = await self.factory.build(entry.spec, path, self._n_ctx(entry.spec))
                entry.memory, entry.error = need, ""
                entry.stats.last_used = time.monotonic()
                if entry.state == "down":
                    entry.state = "active"
            except Exception as exc:  # noqa: BLE001 - a broken model must not stop the arena
                message = str(exc) or type(exc).__name__
                log.error("model %s failed to load: %s", model_id, message)
                if strict:
                    kind = NoRoom if isinstance(exc, NoRoom) else Invalid
                    raise kind(f"could not load {model_id}: {message}") from exc
                entry.state, entry.error = "down", message
                self._take_down(entry, message)
        return entry

    # -- failures and probes ------------------------------------------------------------------

    def failed(self, model_id: str, detail: str) -> None:
        """Count a failed generation; ``failure_limit`` in a row take the model down until a
        probe passes. Unknown ids (a model removed meanwhile) are ignored."""
        entry = self.entries.get(model_id)
        if entry is None:
            return
        entry.failures += 1
        if entry.failures >= self.failure_limit and entry.state == "active":
            entry.state = "down"
            entry.error = f"down after {entry.failures} consecutive failures (last: {detail})"
            log.error("model %s is down: %s", model_id, entry.error)
            self._take_down(entry, entry.error)

    def succeeded(self, model_id: str) -> None:
        entry = self.entries.get(model_id)
        if entry is not None:
            entry.failures = 0

    def _take_down(self, entry: ModelEntry, reason: str) -> None:
        entry.auto_down = True
        if self.probe_interval > 0 and entry.id not in self._probes:
            self._probes[entry.id] = asyncio.create_task(self._probe_loop(entry.id))

    async def _probe_loop(self, model_id: str) -> None:
        wait = self.probe_interval
        try:
            while True:
                await asyncio.sleep(wait)
                entry = self.entries.get(model_id)
                if entry is None or entry.state != "down" or not entry.auto_down:
                    return
                if await self.probe(model_id):
                    log.info("model %s passed a probe and is back", model_id)
                    return
                wait = min(wait * 2, 300.0)
        finally:
            self._probes.pop(model_id, None)

    async def probe(self, model_id: str) -> bool:
        """Try a downed model: load it if it is not loaded, then generate a few tokens. When
        that works the model is active again."""
        entry = self.get(model_id)
        if entry.engine is None:
            await self.load(model_id)
            if entry.engine is None:
                return False
        request = GenerationRequest(
            request_id=f"probe-{model_id}-{time.monotonic_ns()}",
            messages=[ChatMessage("user", "Say OK.")],
            max_tokens=4,
            temperature=0.0,
        )
        stream = cast(AsyncGenerator[Any, None], entry.engine.generate(request))
        try:
            async with asyncio.timeout(self.probe_timeout):
                async for _delta in stream:
                    pass
        except Exception as exc:  # noqa: BLE001 - a failed probe keeps the model down
            entry.error = f"{entry.error.split(' [probe: ')[0]} [probe: {str(exc) or type(exc).__name__}]"
            return False
        finally:
            await stream.aclose()
        entry.state, entry.error, entry.failures, entry.auto_down = "active", "", 0, False
        return True

    def _n_ctx(self, spec: ModelSpec) -> int:
        same = [e.spec.context_length for e in self.entries.values() if e.spec.weights == spec.weights]
        return max([spec.context_length, *same])

    def _check_budget(self, entry: ModelEntry, need: int) -> None:
        shortfall = gpu_shortfall(entry.spec)
        if shortfall:
            raise NoRoom(shortfall)
        if not self.memory_budget or not need:
            return
        used = self.memory_in_use()
        if used + need > self.memory_budget:
            raise NoRoom(
                f"not enough memory to load {entry.id}: it needs about {need // MB} MB, and "
                f"{used // MB} MB of the {self.memory_budget // MB} MB memory budget are in use"
            )

    async def unload(self, model_id: str) -> ModelEntry:
        entry = self.get(model_id)
        async with self._lock:
            engine, entry.engine = entry.engine, None
            entry.memory = 0
            if engine is not None:
                await engine.close()
            self.factory.release_unused([e.engine for e in self.entries.values() if e.engine])
        return entry

    async def ensure_loaded(self, model_id: str) -> ModelEntry:
        entry = self.get(model_id)
        if entry.engine is None and entry.state != "down":
            await self.load(model_id)
        return entry

    async def reap_idle(self) -> list[str]:
        """Unload models idle for longer than the keep-alive; returns their ids."""
        if not self.keep_alive:
            return []
        now = time.monotonic()
        idle = [
            e.id
            for e in self.entries.values()
            if e.loaded and e.stats.running == 0 and now - e.stats.last_used > self.keep_alive
        ]
        for model_id in idle:
            log.info("unloading %s after %.0f s idle", model_id, self.keep_alive)
            await self.unload(model_id)
        return idle

    async def close(self) -> None:
        for task in list(self._probes.values()):
            task.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)
        for entry in self.entries.values():
            if entry.engine is not None:
                await entry.engine.close()
                entry.engine = None
        self.factory.close()

    # -- runtime changes (admin) --------------------------------------------------------------

    async def add(self, spec: ModelSpec) -> ModelEntry:
        if spec.id in self.entries:
            raise Conflict(f"a model with id {spec.id!r} already exists")
        if why := spec.greedy_in_battles():
            raise Invalid(why, param="battle_temperature")
        try:
            check_weights(spec, self.model_dirs)
        except WeightsError as exc:
            raise Invalid(str(exc)) from None
        check_remote_host(spec, self.factory.remote_hosts)  # a 400 naming base_url, before any fetch
        entry = ModelEntry(spec)
        self.entries[spec.id] = entry
        try:
            await self.load(spec.id, strict=True)
        except DomainError:
            del self.entries[spec.id]
            raise
        await self._persist(entry)
        return entry

    async def update(self, model_id: str, changes: dict[str, Any]) -> ModelEntry:
        entry = self.get(model_id)
        if "id" in changes and changes["id"] != model_id:
            raise Invalid("a model's id cannot change")
        merged = entry.spec.model_dump() | changes
        for key in ("defaults", "metadata"):
            if isinstance(changes.get(key), dict):
                merged[key] = entry.spec.model_dump()[key] | changes[key]
        try:
            spec = ModelSpec.model_validate(merged)
        except ValidationError as exc:
            raise Invalid(f"invalid model: {exc.errors(include_url=False)[0]['msg']}") from None
        if why := spec.greedy_in_battles():
            raise Invalid(why, param="battle_temperature")
        engine_fields = (
            "engine",
            "weights",
            "chat_format",
            "context_length",
            "base_url",
            "api_key_env",
            "remote_model",
            "lora",
            "mmproj",
            "vision",
        )
        reload = any(getattr(spec, f) != getattr(entry.spec, f) for f in engine_fields)
        check_remote_change(entry.spec, spec, changes, self.factory.remote_hosts)
        if reload:
            try:
                check_weights(spec, self.model_dirs)
            except WeightsError as exc:
                raise Invalid(str(exc)) from None
        old = entry.spec
        entry.spec = spec
        if reload and entry.loaded:
            await self.unload(model_id)
            try:
                await self.load(model_id, strict=True)
            except DomainError:
                entry.spec = old
                await self.load(model_id)
                raise
        await self._persist(entry)
        return entry

    async def set_state(self, model_id: str, state: str) -> ModelEntry:
        if state not in STATES:
            raise Invalid(f"state must be one of {', '.join(STATES)}")
        entry = self.get(model_id)
        entry.state = state  # type: ignore[assignment]
        entry.failures, entry.auto_down = 0, False  # an admin's choice; no probe overrides it
        await self._persist(entry)
        return entry

    async def remove(self, model_id: str) -> None:
        entry = self.get(model_id)
        await self.unload(model_id)
        del self.entries[model_id]
        await self._persist(entry, removed=True)

    async def _persist(self, entry: ModelEntry, removed: bool = False) -> None:
        if self.store is None:
            return
        spec_json = entry.spec.model_dump_json()
        state, now = entry.state, time.time()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO registry (id, spec, state, removed, updated) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, state = excluded.state,"
                " removed = excluded.removed, updated = excluded.updated",
                (entry.id, spec_json, state, int(removed), now),
            )

        await self.store.write(write)


__all__ = ["EngineError", "ModelEntry", "Registry", "UnknownModel"]
