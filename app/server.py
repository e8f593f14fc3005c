"""``create_app(settings)``: the one place the application is assembled.

Nothing is read from the environment here; engines and the database open in the lifespan and
close in its ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.arena.leaderboard import Service as LeaderboardService
from app.arena.limits import Slots, Throttle
from app.arena.service import Arena, Limits
from app.engines.llamacpp import CpuBudget
from app.engines.llamacpp_check import check_gguf
from app.eval.jobs import Jobs
from app.media.images import ImageLimits, ImageStore
from app.metrics import Metrics
from app.moderation import service as moderation
from app.registry.core import Registry
from app.registry.factory import MB, memory_total
from app.registry.spec import ModelSpec, allowed_remote_hosts, check_api_key_env, demo_model_missing, load_models
from app.routes import admin, admin_eval, arena_api, errors, health, leaderboard, openai, openapi, pages
from app.routes.security_headers import add_security_headers
from app.settings import Settings
from app.store import admin_sessions, migrations
from app.store.db import Store
from app.web import views


async def reaper(registry: Registry) -> None:
    """Unload idle models when a keep-alive is set."""
    while registry.keep_alive:
        await asyncio.sleep(min(5.0, registry.keep_alive / 2))
        await registry.reap_idle()


@asynccontextmanager
async def background(coro: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(coro)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
static_files = create_static_files_router(path="/static", directories=[STATIC], name="static")


def _count_requests(metrics: Metrics) -> Any:
    """A before-send hook: one count per response, by route template and status."""

    async def hook(message: Any, scope: Any) -> None:
        if message["type"] == "http.response.start":
            route = scope.get("path_template") or "unmatched"
            metrics.requests.labels(route, str(message["status"])).inc()

    return hook


def _state(settings: Settings, remote_hosts: frozenset[str]) -> State:
    """Everything the routes share, built without touching the disk (the lifespan opens it)."""
    registry = Registry(
        budget=CpuBudget(settings.threads or None),
        parallel=settings.parallel,
        max_queue=settings.max_queue,
        model_dirs=[Path(d) for d in settings.model_dir],
        memory_budget=settings.memory_budget_mb * MB or int(memory_total() * 0.85),
        keep_alive=settings.keep_alive,
        check_gguf=check_gguf if settings.check_engines else None,
        remote_hosts=remote_hosts,
    )
    registry.factory.env_prefix = settings.remote_env_prefix
    metrics = Metrics()
    store = Store(settings.db)
    throttle = Throttle.from_settings(settings)
    board = LeaderboardService(store)
    modes = tuple("direct" if m == "chat" else m for m in settings.open_modes)  # the arena's name for chat
    limits = Limits(settings.max_prompt_chars, settings.max_turns, settings.generation_timeout, modes)
    arena = Arena(registry, store, metrics, limits)
    arena.on_vote = board.bump
    arena.throttle = throttle
    arena.moderation = moderator = moderation.from_settings(settings, store, registry, metrics)
    arena.identity_check = settings.identity_check
    arena.images = images = image_store(settings)
    return State(
        {
            "settings": settings,
            "models": registry,
            "metrics": metrics,
            "store": store,
            "secret": settings.secret,  # the stored secret replaces it once the database is open
            "arena": arena,
            "leaderboard": board,
            "throttle": throttle,
            "streams": Slots(settings.max_streams_per_client),  # open event streams per client
            "jobs": Jobs(),  # the /admin eval job (one at a time)
            "moderation": moderator,
            "images": images,
            "ended_sessions": set(),  # admin sessions ended by logout (app.store.admin_sessions)
        }
    )


def _log_battle_models(state: State) -> None:
    """Which models anonymous battles draw from, and why the default chat model is missing."""
    if state.settings.models is None and (missing := demo_model_missing()):
        log.warning("%s", missing)
    drawn = [model for model, _weight in state.arena.eligible()]
    if len(drawn) < 2:
        log.warning(
            "anonymous battles need two models in battles and this arena has %d (%s); named battles, chat and"
            " /v1 still serve every model",
            len(drawn),
            ", ".join(drawn) or "none",
        )
    else:
        log.info("anonymous battles draw from: %s", ", ".join(drawn))


def image_store(settings: Settings) -> ImageStore:
    """Where uploads are kept (by hash, outside the database) and how big they may be."""
    limits = ImageLimits(
        max_bytes=int(settings.image_max_mb * 1024 * 1024),
        long_edge=settings.image_long_edge,
        per_conversation=settings.images_per_conversation,
    )
    folder = settings.image_dir or settings.db.with_name(settings.db.name + ".images")
    return ImageStore(folder, limits)


def _lifespan(state: State, specs: list[ModelSpec], csrf: CSRFConfig) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            await state.store.open()
            if not state.settings.secret:
                state.secret = csrf.secret = await asyncio.to_thread(migrations.stored_secret, state.store.path)
            state.ended_sessions.update(await admin_sessions.ended_sessions(state.store))
            await state.models.start(specs, state.store)
            _log_battle_models(state)
            async with background(reaper(state.models)):
                yield
        finally:
            await state.jobs.close()  # a running eval job stops before the engines and the database close
            await state.arena.close()
            await state.moderation.close()
            await state.models.close()
            await state.store.close()

    return lifespan


def create_app(settings: Settings) -> Litestar:
    """The app for ``settings``. Reads the models file and checks it; writes nothing (the
    database opens in the lifespan), so bad settings fail before any file is made."""
    specs = load_models(settings.models)
    for spec in specs:
        check_api_key_env(spec, settings.remote_env_prefix)
    moderation.check_model(settings, specs)
    state = _state(settings, allowed_remote_hosts(specs, settings.remote_hosts))
    # Until the lifespan reads the database's own secret, a throwaway one (never used to serve).
    csrf = CSRFConfig(
        secret=settings.secret or secrets.token_hex(32),
        exclude=["^/v1/", "^/api/", "^/health", "^/ready", "^/metrics"],
        cookie_samesite="strict",
        cookie_secure=False,
    )
    return Litestar(
        route_handlers=[
            openai.router,
            arena_api.router,
            admin.api_router,
            *admin.page_handlers,
            *admin_eval.route_handlers,
            *pages.route_handlers,
            *leaderboard.route_handlers,
            *health.route_handlers,
            static_files,
        ],
        template_config=TemplateConfig(engine=JinjaTemplateEngine.from_environment(views.environment())),
        csrf_config=csrf,
        state=state,
        plugins=[HTMXPlugin()],
        lifespan=[_lifespan(state, specs, csrf)],
        before_send=[_count_requests(state.metrics), add_security_headers],
        exception_handlers=errors.HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi.config(),
        logging_config=None,
    )
