"""Shared fixtures: in-process apps over scripted engines, and a real `arena serve` subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import serve

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def scripted_models_toml(replies: dict[str, list[str]]) -> str:
    blocks = []
    for model_id, script in replies.items():
        quoted = ", ".join(json.dumps(s) for s in script)  # JSON strings are TOML basic strings
        blocks.append(
            textwrap.dedent(
                f"""
                [[models]]
                id = "{model_id}"
                name = "Scripted {model_id}"
                engine = "scripted"
                context_length = 64
                script = [{quoted}]
                metadata = {{ organization = "Test Org", license = "MIT" }}
                """
            )
        )
    return "\n".join(blocks)


@pytest.fixture
def make_app(tmp_path: Path):
    """Build an app over scripted engines: make_app({"model-x": ["reply"]}, **settings)."""

    def build(replies: dict[str, list[str]] | None = None, **overrides: object) -> Litestar:
        models = tmp_path / "models.toml"
        models.write_text(scripted_models_toml(replies or {"alpha": ["Hello there."], "beta": ["Hi!"]}))
        settings = Settings(models=models, db=tmp_path / "arena.db", **overrides)  # type: ignore[arg-type]
        return create_app(settings)

    return build


@pytest.fixture
async def client(make_app) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(make_app()) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ArenaServer:
    """`arena serve` as a subprocess on a free loopback port."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"server-{self.port}.log"
        cmd = [sys.executable, "-m", "app", "serve", "--port", str(self.port), "--db", str(tmp / "arena.db"), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.base + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not become ready: {self.log.read_text()}")

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.base + "/metrics").text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(name + ("{" + want + "}" if want else " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def arena_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    server = ArenaServer(tmp_path_factory.mktemp("server"))
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
