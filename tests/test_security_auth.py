"""Issue 19, items 1 and 5, through the real `arena serve`: an empty admin token or API key is
no token at all, a short one is refused at start-up, and wrong bearer tokens are throttled."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import ADMIN_TOKEN, ROOT, ArenaServer, scripted_models_toml

ADMIN_MODELS = "/api/v1/admin/models"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "models.toml"
    path.write_text(scripted_models_toml({"alpha": ["A."], "beta": ["B."]}))
    return path


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")} | (env or {})
    cmd = [sys.executable, "-m", "app", "serve", "--port", "0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=clean, cwd=ROOT, timeout=60)


def _login(base: str, token: str) -> httpx.Response:
    """The login form as a browser sends it: the CSRF cookie from the page, then the POST."""
    with httpx.Client(base_url=base, timeout=10) as c:
        c.get("/admin/login")
        r = c.post("/admin/login", data={"token": token}, headers={"x-csrftoken": c.cookies["csrftoken"]})
        r.extensions["cookies"] = dict(c.cookies)
        return r


# -- item 1: empty is unset, short is refused -------------------------------------------------


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Iterator[ArenaServer]:
    """An unset compose variable (`ARENA_ADMIN_TOKEN=`) and an empty `--api-key ""`."""
    tmp = tmp_path_factory.mktemp("empty")
    server = ArenaServer(tmp, "--models", str(models), "--api-key", "", extra_env={"ARENA_ADMIN_TOKEN": ""})
    yield server
    server.stop()


@pytest.mark.parametrize("header", ["Bearer", "bearer"])  # a trailing space is stripped on the wire
def test_an_empty_admin_token_leaves_admin_off(empty_server: ArenaServer, header: str) -> None:
    r = httpx.get(empty_server.base + ADMIN_MODELS, headers={"Authorization": header}, timeout=10)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "admin_disabled"


def test_an_empty_login_never_signs_in_with_an_empty_token(empty_server: ArenaServer) -> None:
    r = _login(empty_server.base, "")
    assert r.status_code == 401 and "arena_admin" not in r.extensions["cookies"], r.text
    assert httpx.get(empty_server.base + "/admin", follow_redirects=False, timeout=10).status_code in (302, 303)


def test_an_empty_api_key_is_no_key(empty_server: ArenaServer) -> None:
    """`--api-key ""` is unset: /v1 is open, as without the flag (it does not ask for an empty key)."""
    assert httpx.get(empty_server.base + "/v1/models", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--admin-token", "short-token"], {}, "--admin-token"),
        ([], {"ARENA_ADMIN_TOKEN": "fifteen-chars.."}, "--admin-token"),
        (["--api-key", "sixteen-chars-ok", "--api-key", "nope"], {}, "--api-key"),
        ([], {"ARENA_API_KEY": "k1,k2"}, "--api-key"),
    ],
)
def test_short_tokens_and_keys_are_refused_at_start_up(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    done = _serve("--db", str(tmp_path / "arena.db"), *args, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "16 characters" in lines[0], done.stderr
    assert "short-token" not in lines[0] and "nope" not in lines[0]  # a secret is not echoed
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("admin")
    server = ArenaServer(tmp, "--models", str(models), "--login-rate", "3/60")
    yield server
    server.stop()


def test_with_a_token_an_empty_bearer_or_login_is_refused(admin_server: ArenaServer) -> None:
    for header in ("Bearer", "bearer"):
        r = httpx.get(admin_server.base + ADMIN_MODELS, headers={"Authorization": header}, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token", r.text
    r = _login(admin_server.base, "")
    assert r.status_code == 401 and "arena_admin" not in r.extensions["cookies"]


# -- item 5: wrong bearer tokens are throttled per IP -----------------------------------------


def test_wrong_bearer_tokens_are_throttled_like_the_login_form(tmp_path: Path, models: Path) -> None:
    server = ArenaServer(tmp_path, "--models", str(models), "--login-rate", "3/60")
    try:
        url = server.base + ADMIN_MODELS
        right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert httpx.get(url, headers=right, timeout=10).status_code == 200  # a right token is not counted
        codes = [
            httpx.get(url, headers={"Authorization": f"Bearer guess-{n:012d}"}, timeout=10).status_code
            for n in range(5)
        ]
        assert codes == [401, 401, 401, 429, 429]
        r = httpx.get(url, headers=right, timeout=10)  # guessing stops: even the right token waits
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
        assert r.json()["error"]["type"] == "rate_limit_exceeded"
        r = httpx.get(server.base + "/metrics", headers={"Authorization": "Bearer another-guess-000"}, timeout=10)
        assert r.status_code == 429  # every door that takes the token is the same door
        assert httpx.get(server.base + "/v1/models", timeout=10).status_code == 200  # the rest still serves
    finally:
        server.stop()
