"""A fault-injecting engine wrapper, and a launcher that serves the real app with faults.

``FaultEngine`` wraps any engine and, while ``broken``, makes its requests fail the chosen way:
``raise`` (an EngineError after ``after`` deltas, or at the end of a shorter answer), ``hang``
(stop yielding after ``after`` deltas until cancelled) or ``slow`` (``delay`` seconds before each
delta). ``install`` wraps the engines a registry's factory builds; a model in ``plan.load`` fails
to load while its fault is broken. ``heal()`` ends a fault, so a probe can pass.

``python -m tests.helpers.faults PLAN_JSON serve ...`` runs ``arena serve`` with the plan installed:
the real server, as a subprocess, for the crash tests.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from app.engines.base import Delta, Engine, EngineError, GenerationRequest

Kind = Literal["raise", "hang", "slow", "load"]


@dataclass
class Fault:
    kind: Kind
    after: int = 1  # deltas passed through before a raise or hang
    delay: float = 0.05  # seconds before each delta of a slow engine
    broken: bool = True
    injected: int = 0  # requests (or loads) this fault broke

    def heal(self) -> None:
        self.broken = False


class FaultEngine(Engine):
    def __init__(self, inner: Engine, fault: Fault) -> None:
        self.inner = inner
        self.fault = fault
        self.kind = inner.kind
        self.streams = inner.streams
        self.max_context = inner.max_context
        self.running = 0  # generations in progress (for leak checks)
        self.started = 0

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        fault = self.fault
        active = fault.broken and fault.kind in ("raise", "hang")
        if active:
            fault.injected += 1
        self.running += 1
        self.started += 1
        inner = self.inner.generate(request)
        try:
            count = 0
            async for delta in inner:
                if active and count >= fault.after:
                    await self._break(request)
                if fault.kind == "slow" and fault.broken:
                    await asyncio.sleep(fault.delay)
                count += 1
                yield delta
            if active:
                await self._break(request)
        finally:
            self.running -= 1
            await inner.aclose()  # type: ignore[attr-defined]

    async def _break(self, request: GenerationRequest) -> None:
        if self.fault.kind == "hang":
            await asyncio.Event().wait()
        raise EngineError(f"injected fault ({self.fault.kind}) in {request.request_id}")

    async def abort(self, request_id: str) -> None:
        await self.inner.abort(request_id)

    async def close(self) -> None:
        await self.inner.close()

    def stats(self) -> Any:
        return self.inner.stats()


@dataclass
class Plan:
    faults: dict[str, Fault] = field(default_factory=dict)  # model id -> its fault
    engines: dict[str, FaultEngine] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Plan:
        """``{"model": {"kind": "slow", "delay": 0.2}}``."""
        return cls({m: Fault(**f) for m, f in json.loads(text).items()})


def install(registry: Any, plan: Plan) -> Plan:
    """Wrap the engines ``registry.factory`` builds from now on, by model id."""
    factory = registry.factory
    build = factory.build

    async def faulty_build(spec: Any, path: str, n_ctx: int) -> Engine:
        fault = plan.faults.get(spec.id)
        if fault is not None and fault.kind == "load" and fault.broken:
            fault.injected += 1
            raise EngineError(f"injected fault: {spec.id} failed to load")
        engine = await build(spec, path, n_ctx)
        if fault is None or fault.kind == "load":
            return engine
        wrapped = FaultEngine(engine, fault)
        plan.engines[spec.id] = wrapped
        return wrapped

    factory.build = faulty_build
    return plan


def main(argv: list[str]) -> None:
    """Serve with a fault plan: ``python -m tests.helpers.faults PLAN_JSON serve --port ...``."""
    import app.server
    from app.cli import main as cli_main

    plan = Plan.parse(argv[0])
    create_app = app.server.create_app

    def faulty_app(settings: Any) -> Any:
        built = create_app(settings)
        install(built.state.models, plan)
        return built

    app.server.create_app = faulty_app  # type: ignore[assignment]
    sys.exit(cli_main(argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
