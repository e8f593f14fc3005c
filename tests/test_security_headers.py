"""Issue 19, item 12: the pages' security headers, the cookies' attributes by scheme, and a
logout that ends the admin session on the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.arena import csrf, serve
from tests.helpers.server import ADMIN_TOKEN, ArenaServer, scripted_models_toml

TOKEN = "headers-admin-token"
PAGES = ["/", "/compare", "/chat", "/leaderboard", "/admin/login", "/admin"]


def _directives(policy: str) -> dict[str, list[str]]:
    parts = [p.split() for p in policy.split(";") if p.strip()]
    return {p[0]: p[1:] for p in parts}


def _cookie(response: httpx.Response, name: str) -> dict[str, str]:
    """The attributes (lower-case names) of the Set-Cookie for ``name``; {} when there is none."""
    for header in response.headers.get_list("set-cookie"):
        first, *attrs = [a.strip() for a in header.split(";")]
        if first.split("=")[0] == name:
            pairs = [a.split("=", 1) for a in attrs]
            return {"value": first.split("=", 1)[1]} | {p[0].lower(): (p[1] if len(p) > 1 else "") for p in pairs}
    return {}


async def test_pages_get_a_csp_and_no_framing(arena) -> None:
    async with arena(admin_token=TOKEN) as c:
        r = await c.post("/battle", data={"prompt": "Hi", "mode": "anony"}, headers=await csrf(c))
        battle_id = r.text.split('data-battle="')[1].split('"')[0]
        for path in [*PAGES, f"/battle/{battle_id}"]:
            r = await c.get(path, follow_redirects=False)
            assert r.headers["x-frame-options"] == "DENY", path
            assert r.headers["referrer-policy"] in ("same-origin", "no-referrer"), path
            assert r.headers["x-content-type-options"] == "nosniff", path
            csp = _directives(r.headers["content-security-policy"])
            assert csp["default-src"] == ["'none'"] and csp["script-src"] == ["'self'"], csp
            assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
            assert csp["form-action"] == ["'self'"] and csp["object-src"] == ["'none'"]
            assert not any("unsafe" in v or v == "*" for values in csp.values() for v in values), csp
        # The JSON APIs get them too; an uploaded image keeps its own, stricter policy.
        assert (await c.get("/api/v1/leaderboard")).headers["x-frame-options"] == "DENY"


async def test_the_csrf_cookie_is_samesite_and_secure_over_https(make_app) -> None:
    async with serve(make_app()) as c:
        plain = _cookie(await c.get("/"), "csrftoken")
        assert plain["samesite"].lower() in ("lax", "strict") and "secure" not in plain, plain
    async with serve(make_app()) as c:
        c.base_url = httpx.URL("https://testserver.local")
        secure = _cookie(await c.get("/"), "csrftoken")
        assert secure["samesite"].lower() in ("lax", "strict") and "secure" in secure, secure


async def _login(c: Any, token: str = TOKEN) -> httpx.Response:
    return await c.post("/admin/login", data={"token": token}, headers=await csrf(c))


async def test_the_admin_cookie_has_the_host_prefix_over_https(make_app) -> None:
    async with serve(make_app(admin_token=TOKEN)) as c:
        c.base_url = httpx.URL("https://testserver.local")
        r = await _login(c)
        assert r.status_code == 200, r.text
        cookie = _cookie(r, "__Host-arena_admin")
        assert cookie and "secure" in cookie and cookie["path"] == "/" and "domain" not in cookie, r.headers
        assert _cookie(r, "arena_admin") == {}
        assert (await c.get("/admin")).status_code == 200
        # Over https the unprefixed name (which a sibling subdomain or plain http could set) is not read.
        value = c.cookies["__Host-arena_admin"]
        c.cookies.clear()
        c.cookies.set("arena_admin", value)
        assert (await c.get("/api/v1/admin/models")).status_code == 401
    async with serve(make_app(admin_token=TOKEN)) as c:
        r = await _login(c)
        assert _cookie(r, "arena_admin") and _cookie(r, "__Host-arena_admin") == {}  # plain http: no prefix


async def test_logout_ends_the_session_on_the_server(make_app) -> None:
    app = make_app(admin_token=TOKEN)
    async with serve(app) as c:
        await _login(c)
        value = c.cookies["arena_admin"]
        assert (await c.get("/api/v1/admin/models")).status_code == 200
        r = await c.post("/admin/logout", headers=await csrf(c))
        assert r.status_code == 200 and r.headers["hx-redirect"] == "/admin/login", r.text
        assert _cookie(r, "arena_admin").get("max-age") == "0"
        c.cookies.set("arena_admin", value)  # the old cookie, replayed
        assert (await c.get("/api/v1/admin/models")).status_code == 401
        assert (await c.get("/admin", follow_redirects=False)).headers["location"] == "/admin/login"
        c.cookies.delete("arena_admin")
        await _login(c)  # a new session works
        assert (await c.get("/api/v1/admin/models")).status_code == 200
        fresh = c.cookies["arena_admin"]
    async with serve(make_app(admin_token=TOKEN)) as c:  # a restart on the same database
        c.cookies.set("arena_admin", value)
        assert (await c.get("/api/v1/admin/models")).status_code == 401
        c.cookies.set("arena_admin", fresh)
        assert (await c.get("/api/v1/admin/models")).status_code == 200


def test_logout_needs_the_csrf_token(make_app) -> None:
    """A logout is a POST like the others: another site cannot end (or start) a session."""
    from litestar.testing import TestClient

    with TestClient(make_app(admin_token=TOKEN)) as c:
        c.get("/")
        assert c.post("/admin/logout").status_code == 403


# -- through a real proxy: uvicorn sets the scheme from X-Forwarded-Proto for --trusted-proxies --


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("proxied")
    (tmp / "models.toml").write_text(scripted_models_toml({"alpha": ["A."], "beta": ["B."]}))
    server = ArenaServer(tmp, "--models", str(tmp / "models.toml"), "--trusted-proxies", "127.0.0.1")
    yield server
    server.stop()


@pytest.mark.parametrize("proto", ["https", "http"])
def test_cookies_follow_the_scheme_a_trusted_proxy_reports(proxied: ArenaServer, proto: str) -> None:
    forwarded = {"x-forwarded-proto": proto}
    r = httpx.get(proxied.base + "/admin/login", headers=forwarded, timeout=10)
    assert ("secure" in _cookie(r, "csrftoken")) is (proto == "https")
    assert r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    token = _cookie(r, "csrftoken")["value"]  # sent by hand: the client's jar keeps Secure ones for https
    headers = forwarded | {"x-csrftoken": token, "cookie": f"csrftoken={token}"}
    r = httpx.post(proxied.base + "/admin/login", data={"token": ADMIN_TOKEN}, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    name = "__Host-arena_admin" if proto == "https" else "arena_admin"
    assert _cookie(r, name), r.headers
    assert ("secure" in _cookie(r, name)) is (proto == "https")


def test_an_untrusted_forwarded_proto_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text(scripted_models_toml({"alpha": ["A."], "beta": ["B."]}))
    server = ArenaServer(tmp_path, "--models", str(tmp_path / "models.toml"))
    try:
        r = httpx.get(server.base + "/admin/login", headers={"x-forwarded-proto": "https"}, timeout=10)
        assert "secure" not in _cookie(r, "csrftoken")
    finally:
        server.stop()
