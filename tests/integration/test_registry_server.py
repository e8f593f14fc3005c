"""The runtime registry on the real server: admin API, transformers and remote engines."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.helpers.server import ArenaServer, presets_models_toml

pytestmark = pytest.mark.integration

TOKEN = {"Authorization": "Bearer admin-secret-token"}


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("admin")
    (tmp / "models").mkdir()
    (tmp / "presets.toml").write_text(presets_models_toml())  # both in anonymous battles
    flags = ("--models", str(tmp / "presets.toml"), "--admin-token", "admin-secret-token")
    flags += ("--model-dir", str(tmp / "models"), "--remote-hosts", "127.0.0.1")
    server = ArenaServer(tmp, *flags)
    server.models_dir = tmp / "models"  # type: ignore[attr-defined]
    yield server
    server.stop()


def _admin(server: ArenaServer, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, server.base + "/api/v1/admin" + path, headers=TOKEN, timeout=120, **kw)


def test_add_a_preset_battle_it_pause_and_reload(admin_server: ArenaServer) -> None:
    spec = {
        "id": "gemma-3-270m-t1.2",
        "name": "Gemma 3 270M (temperature 1.2)",
        "engine": "auto",
        "weights": "bundled:gemma-3-270m",
        "defaults": {"temperature": 1.2, "max_tokens": 24},
    }
    r = _admin(admin_server, "POST", "/models", json=spec)
    assert r.status_code == 201, r.text
    assert r.json()["engine"] == "llama.cpp"  # auto resolved for a GGUF file
    battle = httpx.post(
        admin_server.base + "/api/v1/battles",
        timeout=120,
        json={
            "prompt": "Say hello.",
            "mode": "named",
            "models": ["gemma-3-270m-t1.2", "gemma-3-270m-greedy"],
            "wait": True,
        },
    ).json()
    assert battle["turns"][0]["a"]["finish_reason"] in ("stop", "length")
    assert _admin(admin_server, "POST", "/models/gemma-3-270m-t1.2/pause").json()["state"] == "paused"
    drawn = set()
    for _ in range(6):
        b = httpx.post(admin_server.base + "/api/v1/battles", timeout=120, json={"prompt": "Hi", "wait": True}).json()
        httpx.post(admin_server.base + f"/api/v1/battles/{b['id']}/vote", json={"winner": "tie"})
        state = httpx.get(admin_server.base + f"/api/v1/battles/{b['id']}").json()
        drawn |= set(state["models"].values())
    assert "gemma-3-270m-t1.2" not in drawn
    assert _admin(admin_server, "POST", "/models/gemma-3-270m-t1.2/unload").json()["loaded"] is False
    assert _admin(admin_server, "POST", "/models/gemma-3-270m-t1.2/load").json()["loaded"] is True
    client = openai.OpenAI(base_url=admin_server.base + "/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="gemma-3-270m-t1.2", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert reply.usage.completion_tokens <= 4


def test_transformers_checkpoint_served_over_v1(admin_server: ArenaServer) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.helpers.tiny_hf import build_tiny_model

    folder = admin_server.models_dir / "tiny"  # type: ignore[attr-defined]
    build_tiny_model(folder)
    r = _admin(
        admin_server,
        "POST",
        "/models",
        json={"id": "tiny-hf", "engine": "auto", "weights": str(folder), "context_length": 128},
    )
    assert r.status_code == 201, r.text
    assert r.json()["engine"] == "transformers"
    client = openai.OpenAI(base_url=admin_server.base + "/v1", api_key="x", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="tiny-hf",
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
            temperature=0,
        )
    )
    assert chunks[-1].usage.completion_tokens == 6
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 1


def test_remote_engine_against_a_second_arena(admin_server: ArenaServer, tmp_path: Path) -> None:
    upstream = ArenaServer(tmp_path)
    try:
        spec = {
            "id": "remote-gemma",
            "engine": "remote",
            "base_url": upstream.base + "/v1",
            "remote_model": "gemma-3-270m-greedy",
            "context_length": 4096,
            "defaults": {"max_tokens": 400, "temperature": 0},
        }
        assert _admin(admin_server, "POST", "/models", json=spec).status_code == 201
        missing = {**spec, "id": "remote-missing", "remote_model": "no-such-model"}
        r = _admin(admin_server, "POST", "/models", json=missing)
        assert r.status_code == 400 and "no-such-model" in r.text

        client = openai.OpenAI(base_url=admin_server.base + "/v1", api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="remote-gemma",
            messages=[{"role": "user", "content": "Tell me a story."}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[-1].usage.completion_tokens == 8
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="remote-gemma", messages=[{"role": "user", "content": "word " * 5000}], max_tokens=10
            )
        assert info.value.code == "context_length_exceeded"

        # the remote goes down mid-stream: that battle side fails cleanly, the other finishes
        battle = httpx.post(
            admin_server.base + "/api/v1/battles",
            timeout=60,
            json={
                "prompt": "Write a very long story about the sea.",
                "mode": "named",
                "models": ["remote-gemma", "gemma-3-270m-greedy"],
            },
        ).json()
        got_text = threading.Event()

        def watch() -> None:
            with httpx.stream("GET", admin_server.base + f"/api/v1/battles/{battle['id']}/events", timeout=120) as r:
                for line in r.iter_lines():
                    if line.startswith("event: a") and "set" not in line:
                        got_text.set()
                    if line.startswith("event: done"):
                        return

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert got_text.wait(60)
        upstream.proc.kill()
        watcher.join(120)
        state = httpx.get(admin_server.base + f"/api/v1/battles/{battle['id']}").json()
        assert state["status"] == "failed"
        assert state["turns"][0]["a"]["error"] and "remote" not in state["turns"][0]["a"]["error"].lower()
        assert state["turns"][0]["b"]["error"] is None and state["turns"][0]["b"]["text"]
        vote = httpx.post(admin_server.base + f"/api/v1/battles/{battle['id']}/vote", json={"winner": "model_a"})
        assert vote.status_code == 409
        assert httpx.get(admin_server.base + "/health").status_code == 200
    finally:
        upstream.stop()
        time.sleep(0)
