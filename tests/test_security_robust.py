"""Issue 19, the in-process half: the rate-limit oracle (3), whole numbers from requests (7),
every ``--help`` (8), remote hosts and upstream bodies (10), and errors that echo input (13).

The real-server halves (9: a full or read-only disk; 11: floods and slow clients) are in
tests/reliability/test_disk_full.py and tests/reliability/test_floods.py."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli import COMMANDS, build_parser
from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import csrf, finish, serve, start_page_battle

MODELS = {"alpha": ["Alpha says hello there."], "beta": ["Beta says hi."], "gamma": ["Gamma hums."]}
CHAT = {"messages": [{"role": "user", "content": "Hi"}]}
OVERFLOW = " ".join(["word"] * 100)  # over the scripted models' 64-token context: a 400 after admission
BEARER = {"authorization": "Bearer robust-admin-token"}


# -- 3: the rate limiter is no oracle ---------------------------------------------------------


async def _accepted_before_429(c: Any, model: str) -> int:
    for n in range(100):
        r = await c.post("/v1/chat/completions", json={"model": model, **CHAT})
        if r.status_code == 429:
            return n
        assert r.status_code == 200, r.text
    raise AssertionError("never limited")


async def _refused(c: Any, model: str) -> None:
    """Calls the server refuses after admitting them: a context overflow, a blocked prompt."""
    for content, code in ((OVERFLOW, "context_length_exceeded"), ("a forbidden word", "content_policy_violation")):
        r = await c.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]}
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


async def test_rate_limit_oracle_counts_are_equal(arena) -> None:
    """After an anonymous battle, a model inside it and a model outside it take the same number
    of /v1 calls before a 429 (it was 29 against 30), and refused calls count for neither."""
    settings = {"model_rate": "5/60", "generation_rate": "1000/60", "moderation": ["words"]}
    async with arena(MODELS, moderation_words=["forbidden"], **settings) as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi?", "wait": True})
        assert r.status_code == 201
        drawn = c.app.state.arena.live[r.json()["id"]].models
        inside = drawn["a"]
        outside = next(m for m in MODELS if m not in drawn.values())
        for _ in range(5):  # as many refused calls as the limit: none of them counts
            await _refused(c, inside)
            await _refused(c, outside)
        counts = {m: await _accepted_before_429(c, m) for m in (inside, outside)}
        assert counts == {inside: 5, outside: 5}


async def test_refused_battles_count_nothing(arena) -> None:
    """A battle refused after admission (its prompt blocked) gives its two generations back."""
    async with arena(MODELS, generation_rate="2/60", moderation=["words"], moderation_words=["forbidden"]) as c:
        for _ in range(3):
            r = await c.post("/api/v1/battles", json={"prompt": "a forbidden word"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation"
        assert (await c.post("/api/v1/battles", json={"prompt": "Hi?", "wait": True})).status_code == 201
        assert (await c.post("/api/v1/battles", json={"prompt": "Hi?"})).status_code == 429


# -- 7: whole numbers -------------------------------------------------------------------------

BAD_NUMBERS = ["²", "٣", "9" * 5000, "1" * 19, "-1", "1e3"]


def _header(raw: str) -> bytes:
    """As a client sends it: a server reads header bytes as Latin-1 (b"\\xb2" is "²")."""
    return raw.encode("latin-1") if max(map(ord, raw)) < 256 else raw.encode()


async def test_unicode_digits_and_long_numbers_are_400s(arena) -> None:
    async with arena(MODELS) as c:
        for raw in BAD_NUMBERS:
            for path in ("/api/v1/leaderboard", "/leaderboard"):
                r = await c.get(path, params={"rounds": raw})
                assert r.status_code == 400 and "rounds" in r.text, (path, raw[:20], r.status_code)
                assert len(r.text) < 500  # the 5,000 digits are not echoed
        battle_id, _ = await start_page_battle(c)
        await finish(c, battle_id)
        headers = await csrf(c)
        for raw in BAD_NUMBERS:
            r = await c.post(f"/battle/{battle_id}/feedback", data={"kind": "up", "message_id": raw}, headers=headers)
            assert r.status_code == 400 and "message_id" in r.text, (raw[:20], r.status_code)
            for path in (f"/battle/{battle_id}/events", f"/api/v1/battles/{battle_id}/events"):
                r = await c.get(path, headers={"last-event-id": _header(raw)})
                assert r.status_code == 400 and "Last-Event-ID" in r.text, (path, raw[:20], r.status_code)
        r = await c.get(f"/battle/{battle_id}/events", headers={"last-event-id": "1"})  # a real one still resumes
        assert r.status_code == 200


# -- 8: --help --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_prints(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    """`arena serve --help` crashed on the % of a setting's description."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"] if command else ["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: arena")
    if command == "serve":
        assert "85%" in out and "%%" not in out


# -- 10: remote hosts -------------------------------------------------------------------------


class Upstream:
    """An OpenAI-style upstream on a loopback port that counts what it was asked."""

    def __init__(self, status: int = 200, body: str = "") -> None:
        self.paths: list[str] = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                upstream.paths.append(self.path)
                payload = body.encode() or json.dumps({"object": "list", "data": [{"id": "m"}]}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstreams() -> Iterator[list[Upstream]]:
    made: list[Upstream] = []
    yield made
    for upstream in made:
        upstream.close()


def _remote(base_url: str, **extra: str) -> dict[str, str]:
    return {"id": "remote-x", "engine": "remote", "base_url": base_url, "remote_model": "m", **extra}


async def test_remote_hosts_are_allowed_by_list(arena, upstreams: list[Upstream]) -> None:
    """An admin could make the server GET any URL and read its body back in the error."""
    secret = Upstream(500, "SECRET-INTERNAL-PAGE")
    upstreams.append(secret)
    async with arena(MODELS, admin_token="robust-admin-token") as c:  # no remote model in the file
        r = await c.post("/api/v1/admin/models", json=_remote(secret.base), headers=BEARER)
        assert r.status_code == 400 and r.json()["error"]["param"] == "base_url", r.text
        assert secret.paths == []  # refused before anything was fetched
        for url in ("file:///etc/passwd", "gopher://127.0.0.1/"):
            r = await c.post("/api/v1/admin/models", json=_remote(url), headers=BEARER)
            assert r.status_code == 400 and secret.paths == []
    async with arena(MODELS, admin_token="robust-admin-token", remote_hosts=["127.0.0.1"]) as c:
        r = await c.post("/api/v1/admin/models", json=_remote(secret.base), headers=BEARER)
        assert r.status_code == 400 and secret.paths == ["/v1/models"]  # allowed: fetched, and it failed
        assert "HTTP 500" in r.text and "SECRET" not in r.text  # the status, never the body


async def test_a_new_base_url_needs_the_key_again(tmp_path: Path, upstreams: list[Upstream], monkeypatch) -> None:
    """Changing base_url would send the ARENA_REMOTE_ key to the new host: it must be named again."""
    monkeypatch.setenv("ARENA_REMOTE_ROBUST_KEY", "sk-robust")
    first, second = Upstream(), Upstream()
    upstreams += [first, second]
    models = tmp_path / "models.toml"
    models.write_text(
        f'[[models]]\nid = "remote-x"\nengine = "remote"\nbase_url = "{first.base}"\nremote_model = "m"\n'
        'api_key_env = "ARENA_REMOTE_ROBUST_KEY"\n'
    )
    base = {"models": models, "db": tmp_path / "a.db", "admin_token": "robust-admin-token"}
    async with serve(create_app(Settings(**base))) as c:  # type: ignore[arg-type]
        assert first.paths == ["/v1/models"]  # the file's host is allowed
        r = await c.patch("/api/v1/admin/models/remote-x", json={"base_url": second.base}, headers=BEARER)
        assert r.status_code == 400 and r.json()["error"]["param"] == "base_url"  # another port: not the file's
    async with serve(create_app(Settings(**base, remote_hosts=["127.0.0.1"]))) as c:  # type: ignore[arg-type]
        r = await c.patch("/api/v1/admin/models/remote-x", json={"base_url": second.base}, headers=BEARER)
        assert r.status_code == 400 and r.json()["error"]["param"] == "api_key_env", r.text
        assert second.paths == []
        change = {"base_url": second.base, "api_key_env": "ARENA_REMOTE_ROBUST_KEY"}
        r = await c.patch("/api/v1/admin/models/remote-x", json=change, headers=BEARER)
        assert r.status_code == 200, r.text
        assert second.paths == ["/v1/models"]


# -- 13: errors that echo input ---------------------------------------------------------------


async def test_errors_do_not_echo_input_or_engine_internals(arena) -> None:
    async with arena(MODELS) as c:
        huge = "m" * 100_000
        r = await c.post("/v1/chat/completions", json={"model": huge, **CHAT})
        assert r.status_code == 404 and len(r.content) < 1000, len(r.content)
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "mode": "named", "models": [huge, "alpha"]})
        assert r.status_code == 400 and len(r.content) < 1000, len(r.content)
        r = await c.get("/" + "x" * 10_000)
        assert r.status_code == 404 and len(r.content) < 1000, len(r.content)

        engine = c.app.state.models.get("alpha").engine
        engine.fail_after = 1  # the engine raises "scripted failure" after one word
        r = await c.post("/v1/chat/completions", json={"model": "alpha", "stream": True, **CHAT})
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
        assert events[-1]["error"]["type"] == "server_error" and events[-1]["error"]["message"]
        assert "scripted failure" not in r.text
        engine.fail_after = 0  # before the first token: a 500, also generic
        r = await c.post("/v1/chat/completions", json={"model": "alpha", **CHAT})
        assert r.status_code == 500 and "scripted failure" not in r.text
        assert r.json()["error"]["code"] == "engine_error"
        while c.app.state.models.get("alpha").state != "down":  # failures in a row take it down
            await c.post("/v1/chat/completions", json={"model": "alpha", **CHAT})
        assert "scripted failure" in c.app.state.models.get("alpha").error  # for the admin page
        r = await c.post("/v1/chat/completions", json={"model": "alpha", **CHAT})
        assert r.status_code == 503 and "consecutive failures" in r.text and "scripted failure" not in r.text
