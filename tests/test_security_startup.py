"""Holes 2 and 6, through the real `arena serve`: bad settings fail before anything is written
(one line, exit code 2), and uvicorn believes X-Forwarded-For only from --trusted-proxies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.server import create_app
from app.settings import Settings
from tests.helpers.server import ROOT, ArenaServer, scripted_models_toml


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    cmd = [sys.executable, "-m", "app", "serve", "--port", "0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--battle-rate", "lots"], "--battle-rate"),
        (["--generation-rate", "0/60"], "--generation-rate"),
        (["--log-level", "loud"], "--log-level"),
    ],
)
def test_bad_settings_exit_2_in_one_line_and_write_nothing(tmp_path: Path, flags: list[str], named: str) -> None:
    db = tmp_path / "arena.db"
    done = _serve("--db", str(db), *flags)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arena: invalid settings: ") and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert list(tmp_path.iterdir()) == []  # no arena.db, no -wal, no -shm


def test_a_bad_models_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[[models]]\nid = "a/b"\nengine = "scripted"\n')
    done = _serve("--db", str(tmp_path / "arena.db"), "--models", str(models))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "a/b" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.toml"]


def test_create_app_writes_nothing_until_the_lifespan(tmp_path: Path) -> None:
    create_app(Settings(db=tmp_path / "arena.db"))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "models.toml"
    path.write_text(scripted_models_toml({"alpha": ["A."], "beta": ["B."]}))
    return path


def _battles(server: ArenaServer, *forwarded: str) -> list[int]:
    codes = []
    for ip in forwarded:
        r = httpx.post(
            server.base + "/api/v1/battles", json={"prompt": "Hi?"}, headers={"X-Forwarded-For": ip}, timeout=10
        )
        codes.append(r.status_code)
    return codes


def test_spoofed_forwarded_for_is_ignored_by_default(tmp_path: Path, models: Path) -> None:
    server = ArenaServer(tmp_path, "--models", str(models), "--battle-rate", "1/60")
    try:
        assert _battles(server, "203.0.113.1", "203.0.113.2", "203.0.113.3") == [201, 429, 429]
    finally:
        server.stop()


def test_forwarded_for_is_believed_from_a_trusted_proxy(tmp_path: Path, models: Path) -> None:
    server = ArenaServer(tmp_path, "--models", str(models), "--battle-rate", "1/60", "--trusted-proxies", "127.0.0.1")
    try:
        assert _battles(server, "203.0.113.1", "203.0.113.2", "203.0.113.1") == [201, 201, 429]
    finally:
        server.stop()
