"""Shared fixtures: in-process apps over scripted engines, and a real `arena serve` subprocess."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import serve
from tests.helpers.server import ArenaServer, presets_models_toml, scripted_models_toml

ROOT = Path(__file__).resolve().parent.parent
# The default models file must not depend on a demo model built on this machine (`make demo-model`).
os.environ["ARENA_DEMO_MODEL"] = ""
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def make_app(tmp_path: Path):
    """Build an app over scripted engines: make_app({"model-x": ["reply"]}, **settings)."""

    def build(replies: dict[str, list[str]] | None = None, **overrides: object) -> Litestar:
        models = tmp_path / "models.toml"
        models.write_text(scripted_models_toml(replies or {"alpha": ["Hello there."], "beta": ["Hi!"]}))
        # Generation and stream limits out of the way unless a test sets them (tests/test_security_limits.py does).
        overrides = {
            "generation_rate": "100000/1",
            "model_rate": "100000/1",
            "max_streams_per_client": 100000,
            **overrides,
        }
        settings = Settings(models=models, db=tmp_path / "arena.db", **overrides)  # type: ignore[arg-type]
        return create_app(settings)

    return build


@pytest.fixture
async def client(make_app) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(make_app()) as c:
        yield c


@pytest.fixture(scope="session")
def arena_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    """A real server over the bundled Gemma's two base presets, both in anonymous battles."""
    tmp = tmp_path_factory.mktemp("server")
    (tmp / "presets.toml").write_text(presets_models_toml())
    server = ArenaServer(tmp, "--models", str(tmp / "presets.toml"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def arena(make_app: Callable[..., Litestar]) -> Callable[..., Any]:
    """``async with arena({"m": ["reply"]}, **settings) as client``: an app served in-process."""

    def build(replies: dict[str, list[str]] | None = None, **settings: Any) -> Any:
        return serve(make_app(replies, **settings))

    return build


@pytest.fixture
async def page_client(arena) -> AsyncIterator[Any]:
    async with arena({"alpha": ["Alpha says **hello**.\n\n- one\n- two"], "beta": ["Beta answers `x`."]}) as c:
        yield c


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, one per test module.

    Not per session: Playwright's sync API keeps an event loop running in this thread while it
    is open, and the async tests that follow need the thread free.
    """
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make test` installs it (make chromium)")
        pytest.skip("Chromium is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in its own context; ``page.errors`` collects uncaught page errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()
