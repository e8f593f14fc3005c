"""Liveness, readiness and Prometheus metrics: always open, never behind an API key (per-model
metrics only for an admin)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State

from app.engines.base import EngineStats
from app.routes.admin import is_admin


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready")
async def ready(state: State) -> Response[dict[str, Any]]:
    """Ready when the models are loaded and the database takes writes (after a write failed on
    the disk, each call probes until one works again)."""
    models = {e.id: {"state": e.state, "engine": e.engine_kind, "loaded": e.loaded} for e in state.models.all()}
    writable = await state.store.writable()
    ok = state.models.ready and writable
    store = {"writable": writable, "error": state.store.write_error}
    return Response({"ready": ok, "models": models, "store": store}, status_code=200 if ok else 503)


@get("/metrics")
async def metrics(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    """Series without a model label for anyone; with an admin token or session, the per-model
    series too (they would tell a voter which models an anonymous battle is running)."""
    stats = {e.id: e.engine.stats() if e.engine is not None else EngineStats() for e in state.models.all()}
    body = state.metrics.render(stats, per_model=is_admin(request))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


route_handlers = [health, ready, metrics]
