"""Hole 1: one rate limiter covers every route that starts a generation (battle, turn,
regenerate, chat, /v1), per client and per model, with 429 and Retry-After."""

from __future__ import annotations

import pytest

from app.arena.limits import Throttle, Window
from app.errors import RateLimited
from tests.helpers.arena import csrf, finish, start_page_battle

MODELS = {"alpha": ["Alpha."], "beta": ["Beta."], "gamma": ["Gamma."]}


def _refused(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 429, (r.status_code, r.text)
    assert int(r.headers["retry-after"]) >= 1


async def test_regenerates_are_limited(arena) -> None:
    """Forty regenerates in a row once all passed; now the generation limit stops them."""
    async with arena(MODELS, generation_rate="6/60", battle_rate="100/60") as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi?", "wait": True})
        assert r.status_code == 201  # 2 generations
        battle_id = r.json()["id"]
        headers = await csrf(c)
        for _ in range(2):  # 4 more: 6 in all
            r = await c.post(f"/battle/{battle_id}/regenerate", headers=headers)
            assert r.status_code == 200
            await finish(c, battle_id)
        r = await c.post(f"/battle/{battle_id}/regenerate", headers=headers)
        _refused(r)
        assert "alpha" not in r.text and "beta" not in r.text and "gamma" not in r.text  # names no model


async def test_turns_are_limited(arena) -> None:
    async with arena(MODELS, generation_rate="4/60") as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi?", "wait": True})
        battle_id = r.json()["id"]
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "More?", "wait": True})
        assert r.status_code == 201
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Again?"})
        _refused(r)
        assert r.json()["error"]["code"] == "rate_limited"
        headers = await csrf(c)
        _refused(await c.post(f"/battle/{battle_id}/turn", data={"prompt": "Page?"}, headers=headers))


async def test_v1_and_chat_share_the_client_limit(arena) -> None:
    async with arena(MODELS, generation_rate="3/60") as c:
        body = {"model": "alpha", "messages": [{"role": "user", "content": "Hi"}]}
        assert (await c.post("/v1/chat/completions", json=body)).status_code == 200
        assert (await c.post("/v1/completions", json={"model": "beta", "prompt": "Hi"})).status_code == 200
        battle_id, _ = await start_page_battle(c, mode="direct", models="gamma")  # chat: the third
        await finish(c, battle_id)
        r = await c.post("/v1/chat/completions", json=body)
        _refused(r)
        assert r.json()["error"]["type"] == "rate_limit_exceeded"
        _refused(
            await c.post("/battle", data={"prompt": "x", "mode": "direct", "models": "gamma"}, headers=await csrf(c))
        )


async def test_per_model_limit_leaves_other_models_free(arena) -> None:
    async with arena(MODELS, model_rate="2/60") as c:
        body = {"model": "alpha", "messages": [{"role": "user", "content": "Hi"}]}
        for _ in range(2):
            assert (await c.post("/v1/chat/completions", json=body)).status_code == 200
        _refused(await c.post("/v1/chat/completions", json=body))
        assert (await c.post("/v1/chat/completions", json={**body, "model": "beta"})).status_code == 200


async def test_limits_are_per_client(arena, make_app) -> None:
    from tests.helpers.arena import serve

    app = make_app(MODELS, generation_rate="1/60")
    body = {"model": "alpha", "messages": [{"role": "user", "content": "Hi"}]}
    async with serve(app, ip="10.0.0.1") as one:
        assert (await one.post("/v1/chat/completions", json=body)).status_code == 200
        _refused(await one.post("/v1/chat/completions", json=body))
    async with serve(app, ip="10.0.0.2") as two:  # same app, another address
        assert (await two.post("/v1/chat/completions", json=body)).status_code == 200


def test_a_refusal_counts_nothing() -> None:
    now = [0.0]
    throttle = Throttle({"generation": Window(3, 60, lambda: now[0]), "model": Window(1, 60, lambda: now[0])})
    throttle.admit("c", ["a"])
    for _ in range(3):  # "a" is at its limit: a pair with it is refused and uses none of the client's 3
        with pytest.raises(RateLimited) as info:
            throttle.admit("c", ["a", "b"])
        assert info.value.retry_after == 60
    throttle.admit("c", ["b", "d"])  # 1 + 2 = 3 generations: fits
    now[0] = 61.0
    throttle.admit("c", ["a", "b"])
