"""Holes 3, 4 and 5: the admin session, secrets through api_key_env, and model ids."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.engines.remote import RemoteEngine
from app.errors import Invalid
from app.registry.spec import ModelsFileError, parse_models
from app.routes.admin import COOKIE, new_session
from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import csrf

TOKEN = "admin-secret-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def _login(c, token: str = TOKEN):  # type: ignore[no-untyped-def]
    return await c.post("/admin/login", data={"token": token}, headers=await csrf(c))


# -- hole 3: the session ----------------------------------------------------------------------


async def test_login_sets_a_signed_expiring_session_not_the_token(arena) -> None:
    async with arena(admin_token=TOKEN, admin_session_hours=2) as c:
        r = await _login(c)
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        value = c.cookies[COOKIE]
        assert TOKEN not in value and TOKEN not in cookie
        attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
        assert attrs["max-age"] == "Max-Age=7200" and "httponly" in attrs and "samesite" in attrs
        assert "secure" not in attrs  # plain http
        assert (await c.get("/admin")).status_code == 200


async def test_session_is_secure_over_https(make_app) -> None:
    from tests.helpers.arena import serve

    async with serve(make_app(admin_token=TOKEN)) as c:
        c.base_url = "https://testserver.local"
        r = await _login(c)
        assert r.status_code == 200, r.text
        assert "secure" in [a.strip().lower() for a in r.headers["set-cookie"].split(";")]


async def test_the_raw_token_expired_or_forged_sessions_are_refused(arena) -> None:
    async with arena(admin_token=TOKEN) as c:
        state = c.app.state
        expired = new_session(state, now=time.time() - 13 * 3600)
        forged = new_session(state)[:-4] + "0000"
        for value in (TOKEN, expired, forged):
            c.cookies.set(COOKIE, value)
            assert (await c.get("/admin", follow_redirects=False)).status_code in (302, 303, 307), value
            assert (await c.get("/api/v1/admin/models")).status_code == 401, value
        c.cookies.set(COOKIE, new_session(state))
        assert (await c.get("/api/v1/admin/models")).status_code == 200


async def test_json_api_needs_json_and_bearer_or_session_and_csrf(arena) -> None:
    async with arena(admin_token=TOKEN) as c:
        await _login(c)
        path = "/api/v1/admin/models/alpha/pause"
        # A cross-site form: the session cookie, text/plain, no CSRF header.
        r = await c.post(path, content=b"x=1", headers={"content-type": "text/plain"})
        assert r.status_code == 415, r.text
        r = await c.post(path, json={})  # JSON but no CSRF token
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_required"
        r = await c.post(path, json={}, headers={"x-csrftoken": "forged" * 12})
        assert r.status_code == 403
        r = await c.post(path, json={}, headers={"x-csrftoken": c.cookies["csrftoken"]})
        assert r.status_code == 200, r.text
        c.cookies.delete(COOKIE)
        r = await c.post(
            "/api/v1/admin/models/alpha/resume", content=b"x", headers={**BEARER, "content-type": "text/plain"}
        )
        assert r.status_code == 415
        assert (await c.post("/api/v1/admin/models/alpha/resume", headers=BEARER)).status_code == 200


async def test_login_is_throttled_per_ip(arena) -> None:
    async with arena(admin_token=TOKEN, login_rate="3/60") as c:
        for _ in range(3):
            assert (await _login(c, "wrong")).status_code == 401
        r = await _login(c, TOKEN)  # even the right token waits: guessing must not go on
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


# -- hole 4: api_key_env ----------------------------------------------------------------------


def _remote(model_id: str, env: str) -> dict[str, object]:
    return {
        "id": model_id,
        "engine": "remote",
        "base_url": "http://127.0.0.1:9",
        "remote_model": "m",
        "api_key_env": env,
    }


async def test_api_key_env_outside_the_prefix_is_refused(arena) -> None:
    async with arena(admin_token=TOKEN) as c:
        r = await c.post("/api/v1/admin/models", json=_remote("leak", "ARENA_ADMIN_TOKEN"), headers=BEARER)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] == "api_key_env" and "ARENA_REMOTE_" in error["message"]
        r = await c.patch("/api/v1/admin/models/alpha", json={"api_key_env": "HOME"}, headers=BEARER)
        assert r.status_code == 400 and r.json()["error"]["param"] == "api_key_env"


def test_models_file_and_engine_refuse_other_variables(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[[models]]\nid = "r"\nengine = "remote"\nbase_url = "http://x"\nremote_model = "m"\napi_key_env = "AWS_SECRET_ACCESS_KEY"\n'
    )
    with pytest.raises(Invalid, match="ARENA_REMOTE_"):
        create_app(Settings(models=models, db=tmp_path / "a.db"))
    with pytest.raises(ValueError, match="must start with ARENA_REMOTE_"):
        RemoteEngine("http://x", "m", api_key_env="HOME")
    create_app(Settings(models=models, db=tmp_path / "a.db", remote_env_prefix="AWS_"))  # configurable


# -- hole 5: model ids ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["org/model", "a b", "../x", "x?y", "", "-lead"])
def test_model_ids_outside_the_alphabet_are_refused(bad: str) -> None:
    with pytest.raises(ModelsFileError, match="letters, digits and"):
        parse_models(f'[[models]]\nid = "{bad}"\nengine = "scripted"\n')


async def test_allowed_ids_work_in_every_admin_route(arena) -> None:
    odd = "org:model.v1-2_x"
    async with arena(admin_token=TOKEN) as c:
        r = await c.post("/api/v1/admin/models", json={"id": "org/model", "engine": "scripted"}, headers=BEARER)
        assert r.status_code == 400 and r.json()["error"]["param"] == "id"
        assert "no /" in r.json()["error"]["message"]
        r = await c.post("/api/v1/admin/models", json={"id": odd, "engine": "scripted"}, headers=BEARER)
        assert r.status_code == 201, r.text
        assert (await c.get(f"/api/v1/admin/models/{odd}", headers=BEARER)).json()["id"] == odd
        assert (await c.post(f"/api/v1/admin/models/{odd}/pause", headers=BEARER)).json()["state"] == "paused"
        assert (await c.patch(f"/api/v1/admin/models/{odd}", json={"weight": 2.0}, headers=BEARER)).status_code == 200
        await _login(c)
        r = await c.post(f"/admin/models/{odd}/resume", headers=await csrf(c))
        assert r.status_code == 200 and c.app.state.models.get(odd).state == "active"
        assert (await c.delete(f"/api/v1/admin/models/{odd}", headers=BEARER)).json() == {"id": odd, "removed": True}
