"""Battle sides sample at battle_temperature with a fresh secret seed (issue 19 item 2), and
the default models file keeps the base presets out of anonymous battles (issue 22), in-process
over scripted engines that record what they were asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar

from app.engines.base import GenerationRequest
from app.registry.spec import ModelSpec, load_models
from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import csrf, serve

SCRIPTED = """
[[models]]
id = "alpha"
engine = "scripted"
script = ["Alpha answers."]
defaults = { temperature = 0.0, top_k = 7, min_p = 0.2, repeat_penalty = 1.3, max_tokens = 50 }

[[models]]
id = "beta"
engine = "scripted"
script = ["Beta answers."]
battle_temperature = 1.1
defaults = { temperature = 0.4 }
"""


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    return json.dumps(value)  # strings, numbers, booleans and lists of them are the same in TOML


def scripted_copy(specs: list[ModelSpec]) -> str:
    """The specs as a models file, each on a scripted engine that names its model."""
    blocks = []
    for spec in specs:
        data = spec.model_dump(exclude_defaults=True) | {"engine": "scripted", "script": [f"I am {spec.id}."]}
        data.pop("weights", None), data.pop("lora", None)
        blocks.append("[[models]]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in data.items() if v is not None))
    return "\n\n".join(blocks) + "\n"


def requests_of(app: Litestar, model: str) -> list[GenerationRequest]:
    return list(app.state.models.get(model).engine.requests)


def app_for(tmp_path: Path, text: str, **settings: Any) -> Litestar:
    models = tmp_path / "models.toml"
    models.write_text(text)
    open_rates = {"generation_rate": "100000/1", "model_rate": "100000/1"}
    return create_app(Settings(models=models, db=tmp_path / "arena.db", **open_rates, **settings))


async def test_each_battle_side_samples_with_its_own_fresh_seed(tmp_path: Path) -> None:
    app = app_for(tmp_path, SCRIPTED)
    async with serve(app) as c:
        ids = []
        for _ in range(5):
            r = await c.post("/api/v1/battles", json={"prompt": "Tell me a story.", "wait": True})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        await c.get("/")
        r = await c.post(f"/battle/{ids[-1]}/regenerate", headers=await csrf(c))
        assert r.status_code == 200, r.text
        await app.state.arena.wait(await app.state.arena.get(ids[-1]))
        alpha, beta = requests_of(app, "alpha"), requests_of(app, "beta")
        assert len(alpha) == len(beta) == 6
        seeds = [q.seed for q in alpha + beta]
        assert all(isinstance(s, int) for s in seeds)
        assert len(set(seeds)) == 12  # per side, per battle, and again on regenerate
        # greedy by default, yet its battle sides sample at 0.7; beta's battle_temperature wins over its own
        assert {q.temperature for q in alpha} == {0.7} and {q.temperature for q in beta} == {1.1}
        assert {(q.top_k, q.min_p, q.repeat_penalty, q.max_tokens) for q in alpha} == {(7, 0.2, 1.3, 50)}
        # no seed leaves the server: not in the battle's JSON, events or store
        state = (await c.get(f"/api/v1/battles/{ids[-1]}")).text
        events = (await c.get(f"/api/v1/battles/{ids[-1]}/events")).text
        dump = "\n".join(str(row) for row in _all_rows(app))
        for seed in seeds:
            assert str(seed) not in state and str(seed) not in events and str(seed) not in dump


def _all_rows(app: Litestar) -> list[Any]:
    from tests.helpers.arena import db_rows

    tables = [r["name"] for r in db_rows(app, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return [tuple(row) for t in tables for row in db_rows(app, f'SELECT * FROM "{t}"')]


async def test_a_chat_keeps_the_models_own_sampling(tmp_path: Path) -> None:
    app = app_for(tmp_path, SCRIPTED)
    async with serve(app) as c:
        await c.get("/chat")
        form = {"prompt": "Hi", "mode": "direct", "models": "alpha"}
        r = await c.post("/battle", data=form, headers={"HX-Request": "true", **await csrf(c)})
        assert r.status_code == 200, r.text
        (battle,) = app.state.arena.live.values()
        await app.state.arena.wait(battle)
        (request,) = requests_of(app, "alpha")
        assert (request.temperature, request.seed) == (0.0, None)


async def test_v1_takes_top_k_min_p_and_repeat_penalty(tmp_path: Path) -> None:
    app = app_for(tmp_path, SCRIPTED)
    async with serve(app) as c:
        body = {"model": "alpha", "messages": [{"role": "user", "content": "Hi"}]}
        r = await c.post("/v1/chat/completions", json={**body, "top_k": 3, "min_p": 0.5, "repeat_penalty": 1.05})
        assert r.status_code == 200, r.text
        r = await c.post("/v1/chat/completions", json=body)  # unset: the model's defaults
        assert r.status_code == 200
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": "Hi", "top_k": 2})
        assert r.status_code == 200
        got = [(q.top_k, q.min_p, q.repeat_penalty) for q in requests_of(app, "alpha")]
        assert got == [(3, 0.5, 1.05), (7, 0.2, 1.3), (2, 0.2, 1.3)]
        for field, bad in (("top_k", -1), ("min_p", 1.5), ("repeat_penalty", 0), ("top_k", "5")):
            r = await c.post("/v1/chat/completions", json={**body, field: bad})
            assert r.status_code == 400 and r.json()["error"]["param"] == field, (field, r.text)


async def test_an_admin_cannot_add_a_model_greedy_in_battles(tmp_path: Path) -> None:
    app = app_for(tmp_path, SCRIPTED, admin_token="a" * 32)
    async with serve(app) as c:
        auth = {"Authorization": "Bearer " + "a" * 32}
        spec = {"id": "gamma", "engine": "scripted", "battle_temperature": 0}
        r = await c.post("/api/v1/admin/models", json=spec, headers=auth)
        assert r.status_code == 400 and "'gamma'" in r.text and "battle_temperature" in r.text, r.text
        r = await c.patch("/api/v1/admin/models/alpha", json={"battle_temperature": 0}, headers=auth)
        assert r.status_code == 400 and "'alpha'" in r.text, r.text
        r = await c.patch("/api/v1/admin/models/alpha", json={"battle": False}, headers=auth)
        assert r.status_code == 200 and r.json()["battle"] is False
        assert [m for m, _ in app.state.arena.eligible()] == ["beta"]


@pytest.fixture
def default_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[ModelSpec]:
    """The real default models file, with the demo adapter "built" (its export.json)."""
    folder = tmp_path / "demo"
    folder.mkdir()
    entry = '[[models]]\nid = "gemma-3-270m-chat"\nweights = "bundled:gemma-3-270m"\nlora = "/x/a.gguf"\n'
    (folder / "export.json").write_text(json.dumps({"models_entry": entry}))
    monkeypatch.setenv("ARENA_DEMO_MODEL", str(folder))
    return load_models(None)


async def test_the_default_file_puts_no_base_preset_into_an_anonymous_battle(
    tmp_path: Path, default_specs: list[ModelSpec]
) -> None:
    app = app_for(tmp_path, scripted_copy(default_specs))
    drawn: set[str] = set()
    async with serve(app) as c:
        for _ in range(20):
            r = await c.post("/api/v1/battles", json={"prompt": "What is the capital of France?", "wait": True})
            assert r.status_code == 201, r.text
            battle_id = r.json()["id"]
            r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})
            assert r.status_code == 200
            drawn |= set(r.json().values())
        assert drawn == {"gemma-3-270m-chat", "smollm2-135m-instruct"}
        for base in ("gemma-3-270m-greedy", "gemma-3-270m-t0.8"):  # still served on /v1
            r = await c.post(
                "/v1/chat/completions", json={"model": base, "messages": [{"role": "user", "content": "Hi"}]}
            )
            assert r.status_code == 200
            r = await c.post(
                "/api/v1/battles",
                json={"prompt": "Hi", "mode": "named", "models": [base, "smollm2-135m-instruct"], "wait": True},
            )
            assert r.status_code == 201  # and in named battles
