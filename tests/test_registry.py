"""The runtime registry and admin API, in-process over scripted engines."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from app.engines.llamacpp import CpuBudget
from app.errors import NoRoom
from app.registry.core import Registry
from app.registry.spec import ModelSpec
from app.routes.errors import status_of

TOKEN = {"Authorization": "Bearer admin-secret-token"}


@pytest.fixture
async def admin(make_app, tmp_path: Path):
    (tmp_path / "models").mkdir()
    # Many wrong tokens below: the throttle of wrong ones (tests/test_security_auth.py) out of the way.
    app = make_app(
        admin_token="admin-secret-token",
        model_dir=[str(tmp_path / "models")],
        login_rate="1000/60",
        remote_hosts=["127.0.0.1"],
    )
    async with AsyncTestClient(app) as c:
        yield c


def _scripted(model_id: str, **kw: object) -> dict[str, object]:
    return {"id": model_id, "name": f"Runtime {model_id}", "engine": "scripted", "script": ["Runtime answer."], **kw}


async def test_every_admin_route_needs_the_token(admin: AsyncTestClient) -> None:
    routes = [
        (method, re.sub(r"\{(\w+):str\}", "x", route.path))
        for route in admin.app.routes
        if route.path.startswith(("/api/v1/admin", "/admin/models"))
        for method in sorted(route.methods - {"OPTIONS", "HEAD"})
    ]
    assert len(routes) >= 6
    await admin.get("/")  # a CSRF cookie, so that the page routes get as far as the token check
    csrf = {"x-csrftoken": admin.cookies["csrftoken"]}
    for method, path in routes:
        for headers in (csrf, {**csrf, "Authorization": "Bearer wrong"}):
            r = await admin.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, r.text)


async def test_admin_is_off_without_a_token(client: AsyncTestClient) -> None:
    r = await client.get("/api/v1/admin/models", headers=TOKEN)
    assert r.status_code == 401 and "Admin is off" in r.json()["error"]["message"]


async def test_add_battle_pause_unload_reload(admin: AsyncTestClient) -> None:
    r = await admin.post("/api/v1/admin/models", json=_scripted("gamma", weight=5.0), headers=TOKEN)
    assert r.status_code == 201, r.text
    assert r.json()["engine"] == "scripted" and r.json()["loaded"]
    ids = [m["id"] for m in (await admin.get("/v1/models")).json()["data"]]
    assert "gamma" in ids
    arena = admin.app.state.arena
    assert "gamma" in {m for m, _ in arena.eligible()}
    battle = await admin.post(
        "/api/v1/battles", json={"prompt": "hi", "mode": "named", "models": ["gamma", "alpha"], "wait": True}
    )
    assert battle.json()["turns"][0]["a"]["text"] == "Runtime answer."

    assert (await admin.post("/api/v1/admin/models/gamma/pause", headers=TOKEN)).json()["state"] == "paused"
    assert "gamma" not in {m for m, _ in arena.eligible()}
    assert (await admin.post("/api/v1/admin/models/gamma/unload", headers=TOKEN)).json()["loaded"] is False
    assert (await admin.post("/api/v1/admin/models/gamma/load", headers=TOKEN)).json()["loaded"] is True
    assert (await admin.post("/api/v1/admin/models/gamma/resume", headers=TOKEN)).json()["state"] == "active"
    r = await admin.patch(
        "/api/v1/admin/models/gamma", json={"weight": 0.5, "metadata": {"license": "MIT"}}, headers=TOKEN
    )
    assert r.json()["weight"] == 0.5 and r.json()["metadata"]["license"] == "MIT"
    listing = (await admin.get("/api/v1/admin/models", headers=TOKEN)).json()["models"]
    assert {m["id"]: m["state"] for m in listing}["gamma"] == "active"
    assert {"queue_depth", "memory_mb", "tokens_per_second", "errors", "engine"} <= set(listing[0])
    assert (await admin.delete("/api/v1/admin/models/gamma", headers=TOKEN)).status_code == 200
    assert "gamma" not in [m["id"] for m in (await admin.get("/v1/models")).json()["data"]]


async def test_runtime_changes_survive_a_restart(make_app, tmp_path: Path) -> None:
    app = make_app(admin_token="admin-secret-token")
    async with AsyncTestClient(app) as c:
        assert (await c.post("/api/v1/admin/models", json=_scripted("gamma"), headers=TOKEN)).status_code == 201
        assert (await c.post("/api/v1/admin/models/alpha/pause", headers=TOKEN)).status_code == 200
        assert (await c.delete("/api/v1/admin/models/beta", headers=TOKEN)).status_code == 200
    async with AsyncTestClient(make_app(admin_token="admin-secret-token")) as c:
        states = {m["id"]: m["state"] for m in (await c.get("/api/v1/admin/models", headers=TOKEN)).json()["models"]}
        assert states == {"alpha": "paused", "gamma": "active"}


@pytest.mark.parametrize(
    ("spec", "status", "needle"),
    [
        (_scripted("alpha"), 409, "already exists"),
        ({"id": "x", "engine": "llama.cpp", "weights": "/etc/passwd"}, 400, "outside the model folders"),
        ({"id": "x", "engine": "llama.cpp", "weights": "MODELS/../../etc/passwd"}, 400, "outside the model folders"),
        ({"id": "x", "engine": "llama.cpp", "weights": "MODELS/missing.gguf"}, 400, "do not exist"),
        ({"id": "x", "engine": "llama.cpp", "weights": "MODELS/notes.txt"}, 400, "not a model"),
        (
            {"id": "x", "engine": "remote", "base_url": "http://127.0.0.1:9/v1", "remote_model": "m"},
            400,
            "could not load",
        ),
        (
            {
                "id": "x",
                "engine": "remote",
                "base_url": "http://127.0.0.1:9/v1",
                "remote_model": "m",
                "api_key_env": "ARENA_TEST_UNSET_KEY",
            },
            400,
            "ARENA_TEST_UNSET_KEY",
        ),
        ({"id": "bad id!", "engine": "scripted"}, 400, "id"),
        ({"id": "x", "engine": "warp-drive"}, 400, "engine"),
    ],
)
async def test_bad_additions_leave_the_registry_unchanged(
    admin: AsyncTestClient, tmp_path: Path, spec, status, needle
) -> None:
    (tmp_path / "models" / "notes.txt").write_text("not weights")
    spec = {k: (v.replace("MODELS", str(tmp_path / "models")) if isinstance(v, str) else v) for k, v in spec.items()}
    before = [m["id"] for m in (await admin.get("/api/v1/admin/models", headers=TOKEN)).json()["models"]]
    r = await admin.post("/api/v1/admin/models", json=spec, headers=TOKEN)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    after = [m["id"] for m in (await admin.get("/api/v1/admin/models", headers=TOKEN)).json()["models"]]
    assert after == before


async def test_memory_budget_refuses_a_load(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    fake = folder / "big.gguf"
    fake.write_bytes(b"GGUF" + bytes(4 * 1024 * 1024))
    registry = Registry(budget=CpuBudget(1), model_dirs=[folder], memory_budget=64 * 1024 * 1024)
    with pytest.raises(NoRoom, match="not enough memory to load big") as info:
        await registry.add(ModelSpec(id="big", engine="llama.cpp", weights=str(fake)))
    assert status_of(info.value) == 507
    assert registry.all() == []


async def test_keep_alive_unloads_idle_models_and_reloads_on_demand(make_app) -> None:
    async with AsyncTestClient(make_app(keep_alive=30)) as c:
        registry = c.app.state.models
        registry.get("alpha").stats.last_used = time.monotonic() - 60
        assert await registry.reap_idle() == ["alpha"]
        assert not registry.get("alpha").loaded and registry.get("beta").loaded
        r = await c.post(
            "/v1/chat/completions", json={"model": "alpha", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert r.status_code == 200 and registry.get("alpha").loaded


async def test_auto_engine_resolution(tmp_path: Path) -> None:
    from app.registry.factory import resolve_kind

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF....")
    assert resolve_kind(ModelSpec(id="a", engine="auto", weights=str(gguf))) == "llama.cpp"
    assert resolve_kind(ModelSpec(id="b", engine="auto", weights="bundled:gemma-3-270m")) == "llama.cpp"
    hf = tmp_path / "hf"
    hf.mkdir()
    assert resolve_kind(ModelSpec(id="c", engine="auto", weights=str(hf))) == "transformers"  # no CUDA here


async def test_admin_page_login_and_actions(admin: AsyncTestClient) -> None:
    from html.parser import HTMLParser

    r = await admin.get("/admin", follow_redirects=False)
    assert r.status_code in (301, 302, 303, 307) and r.headers["location"] == "/admin/login"
    await admin.get("/admin/login")
    csrf = {"x-csrftoken": admin.cookies["csrftoken"]}
    assert (await admin.post("/admin/login", data={"token": "nope"}, headers=csrf)).status_code == 401
    assert (await admin.post("/admin/login", data={"token": "admin-secret-token"}, headers=csrf)).status_code == 200

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.ids: list[str] = []
            self._in_code = False

        def handle_starttag(self, tag, attrs):  # type: ignore[override]
            self._in_code = tag == "code"

        def handle_data(self, data):  # type: ignore[override]
            if self._in_code:
                self.ids.append(data)
                self._in_code = False

    page = Rows()
    page.feed((await admin.get("/admin")).text)
    assert page.ids[-2:] == ["alpha", "beta"]
    swapped = await admin.post("/admin/models/beta/pause", headers=csrf)
    assert swapped.status_code == 200 and admin.app.state.models.get("beta").state == "paused"
    assert '<td class="battles">no (paused)</td>' in swapped.text and '<td class="battles">yes</td>' in swapped.text
    await admin.post("/admin/models/beta/remove", headers=csrf)
    assert [e.id for e in admin.app.state.models.all()] == ["alpha"]


def test_cli_models_offline(tmp_path: Path, capsys) -> None:
    from app.cli import main

    db = str(tmp_path / "a.db")
    assert main(["models", "--db", db, "--port", "9"]) == 0
    assert "gemma-3-270m-greedy" in capsys.readouterr().out
    assert main(["models", "pause", "gemma-3-270m-t0.8", "--db", db, "--port", "9"]) == 0
    assert main(["models", "add", "extra", "--weights", "bundled:gemma-3-270m", "--db", db, "--port", "9"]) == 0
    assert main(["models", "add", "bad", "--weights", "/etc/passwd", "--db", db, "--port", "9"]) == 1
    assert "outside the model folders" in capsys.readouterr().err
    assert (
        main(["models", "add", "aside", "--weights", "bundled:gemma-3-270m", "--no-battle", "--db", db, "--port", "9"])
        == 0
    )
    main(["models", "--db", db, "--port", "9"])
    listing = capsys.readouterr().out
    assert "extra" in listing and "paused" in listing
    lines = listing[listing.index("ID ") :].splitlines()
    battles = lines[0].index("BATTLES")
    column = {line.split()[0]: line[battles:].split("  ")[0].strip() for line in lines[1:] if line.strip()}
    assert column["gemma-3-270m-greedy"] == "no (battle = false)"  # the default file keeps the bases out
    assert column["gemma-3-270m-t0.8"] == "no (battle = false)"
    assert column["smollm2-135m-instruct"] == column["extra"] == "yes"
    assert column["aside"] == "no (battle = false)"


def test_gpu_budget_refuses_a_vllm_model_that_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from app.registry import factory

    monkeypatch.setattr(factory, "resolve_kind", lambda spec: "vllm")
    monkeypatch.setattr(factory, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (10 * 2**30, 80 * 2**30))
    message = factory.gpu_shortfall(ModelSpec(id="big", engine="vllm", weights="/m"))
    assert message is not None and "not enough GPU memory to load big" in message and "10.0 GiB are free" in message
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (79 * 2**30, 80 * 2**30))
    assert factory.gpu_shortfall(ModelSpec(id="big", engine="vllm", weights="/m")) is None
