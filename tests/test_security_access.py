"""Issue 19, items 4 and 14: who may act on a battle, which modes and models are open, and what a
battle tells before its vote."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from app.server import create_app
from app.settings import Settings, SettingsError, load_settings
from tests.helpers.arena import csrf, db_rows, finish, parse_html, read_events, serve
from tests.helpers.server import ArenaServer, scripted_models_toml

# -- item 14: finish_reason waits for the vote ------------------------------------------------


def _reasons(turns: list[dict[str, dict[str, object]]]) -> list[object]:
    return [turn[side]["finish_reason"] for turn in turns for side in ("a", "b")]


async def test_finish_reason_is_held_back_until_the_vote(arena) -> None:
    """A finish_reason of "length" tells a preset's max_tokens, and so which model it is."""
    async with arena({"alpha": ["Alpha one."], "beta": ["Beta one."]}) as c:
        started = (await c.post("/api/v1/battles", json={"prompt": "First?", "wait": True})).json()
        battle_id = started["id"]
        assert _reasons(started["turns"]) == [None, None]
        assert _reasons((await c.get(f"/api/v1/battles/{battle_id}")).json()["turns"]) == [None, None]
        events = await read_events(c.app, f"/api/v1/battles/{battle_id}/events", 3)
        sets = [json.loads(e.data) for e in events if e.event.endswith("-set")]
        assert len(sets) == 2 and all(s["finished"] and s["finish_reason"] is None for s in sets), sets

        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200
        assert _reasons((await c.get(f"/api/v1/battles/{battle_id}")).json()["turns"]) == ["stop", "stop"]
        events = await read_events(c.app, f"/api/v1/battles/{battle_id}/events", 3)
        assert [json.loads(e.data)["finish_reason"] for e in events if e.event.endswith("-set")] == ["stop", "stop"]


async def test_finish_reason_shows_where_the_models_are_named(arena) -> None:
    async with arena({"alpha": ["Alpha one."], "beta": ["Beta one."]}) as c:
        body = {"prompt": "First?", "mode": "named", "models": ["alpha", "beta"], "wait": True}
        started = (await c.post("/api/v1/battles", json=body)).json()
        assert _reasons(started["turns"]) == ["stop", "stop"]


# -- item 4: a battle belongs to the visitor who started it -----------------------------------


@asynccontextmanager
async def other_visitor(app: Litestar, ip: str = "10.9.8.7") -> AsyncIterator[httpx.AsyncClient]:
    """Another visitor (another address) on the same running app."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40001))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local", timeout=30) as c:
        yield c


def _stored(app: Litestar, battle_id: str) -> tuple[int, int, int]:
    """(prompts, votes, feedback rows) of the battle, as stored."""
    prompts = db_rows(app, "SELECT COUNT(*) FROM messages WHERE battle_id = ? AND side = ''", (battle_id,))[0][0]
    votes = db_rows(app, "SELECT COUNT(*) FROM votes WHERE battle_id = ?", (battle_id,))[0][0]
    feedback = db_rows(app, "SELECT COUNT(*) FROM feedback WHERE battle_id = ?", (battle_id,))[0][0]
    return prompts, votes, feedback


async def test_another_visitor_cannot_act_on_a_battle(arena) -> None:
    async with arena({"alpha": ["Alpha one."], "beta": ["Beta one."]}) as owner:
        r = await owner.post(
            "/battle", data={"prompt": "Hi", "mode": "direct", "models": "alpha"}, headers=await csrf(owner)
        )
        chat_id = parse_html(r.text).one(id_="battle").attrs["data-battle"]
        await finish(owner, chat_id)
        message_id = db_rows(owner.app, "SELECT id FROM messages WHERE battle_id = ? AND side = 'a'", (chat_id,))[0][0]
        battle_id = (await owner.post("/api/v1/battles", json={"prompt": "First?", "wait": True})).json()["id"]
        before = _stored(owner.app, battle_id), _stored(owner.app, chat_id)

        async with other_visitor(owner.app) as other:
            page = await other.get("/")
            htmx = {"x-csrftoken": other.cookies["csrftoken"], "hx-request": "true"}
            refused = [
                await other.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Mine now?"}),
                await other.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"}),
                await other.get(f"/api/v1/battles/{battle_id}/events"),
                await other.post(f"/battle/{battle_id}/turn", data={"prompt": "Mine now?"}, headers=htmx),
                await other.post(f"/battle/{battle_id}/stop", headers=htmx),
                await other.post(f"/battle/{battle_id}/regenerate", headers=htmx),
                await other.post(f"/battle/{battle_id}/vote", data={"winner": "model_a"}, headers=htmx),
                await other.get(f"/battle/{battle_id}/events"),
                await other.post(
                    f"/battle/{chat_id}/feedback", data={"message_id": str(message_id), "kind": "flag"}, headers=htmx
                ),
            ]
            assert page.status_code == 200
            assert [r.status_code for r in refused] == [404] * len(refused), [r.text for r in refused]
            assert refused[0].json()["error"]["message"] == "No such battle."  # as for one that does not exist

            # A shared link still shows the battle, read-only: nothing on it acts.
            view = parse_html((await other.get(f"/battle/{battle_id}")).text)
            battle = view.one(id_="battle")
            assert [n for n in battle if any(k.startswith(("hx-", "sse-")) for k in n.attrs)] == []
            assert battle.all("form") == [] and battle.all("button") == []
            assert (await other.get(f"/api/v1/battles/{battle_id}")).status_code == 200

        assert (_stored(owner.app, battle_id), _stored(owner.app, chat_id)) == before
        # The owner still can.
        r = await owner.post(
            f"/battle/{chat_id}/feedback", data={"message_id": str(message_id), "kind": "up"}, headers=await csrf(owner)
        )
        assert r.status_code == 200, r.text
        assert (await owner.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200


# -- item 4: which modes are open -------------------------------------------------------------


async def test_with_an_api_key_only_anonymous_battles_are_open(arena) -> None:
    """A named battle or a chat is /v1 by another door: with --api-key they are closed by default."""
    async with arena({"alpha": ["A."], "beta": ["B."]}, api_key=["k" * 16]) as c:
        body = {"prompt": "Hi", "mode": "named", "models": ["alpha", "beta"], "wait": True}
        r = await c.post("/api/v1/battles", json=body)
        assert r.status_code == 403, r.text
        assert "not open" in r.json()["error"]["message"] and r.json()["error"]["param"] == "mode"
        for mode, models in (("named", ["alpha", "beta"]), ("direct", ["alpha"])):  # the API has no chat
            r = await c.post("/battle", data={"prompt": "Hi", "mode": mode, "models": models}, headers=await csrf(c))
            assert r.status_code == 403 and "not open" in r.text
        assert db_rows(c.app, "SELECT COUNT(*) FROM battles")[0][0] == 0
        for path in ("/compare", "/chat"):
            assert (await c.get(path)).status_code == 403
        nav = [a.attrs["href"] for a in parse_html((await c.get("/")).text).one("nav").all("a")]
        assert nav == ["/", "/leaderboard"]  # the page offers no closed mode
        assert (await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})).status_code == 201


async def test_modes_chooses_the_open_modes(arena) -> None:
    async with arena({"alpha": ["A."], "beta": ["B."]}, api_key=["k" * 16], modes=["anony", "chat"]) as c:
        body = {"prompt": "Hi", "mode": "named", "models": ["alpha", "beta"]}
        assert (await c.post("/api/v1/battles", json=body)).status_code == 403
        form = {"prompt": "Hi", "mode": "direct", "models": "alpha"}
        assert (await c.post("/battle", data=form, headers=await csrf(c))).status_code == 200
        assert (await c.get("/chat")).status_code == 200 and (await c.get("/compare")).status_code == 403
    async with arena({"alpha": ["A."], "beta": ["B."]}, modes=["named"]) as c:
        assert (await c.post("/api/v1/battles", json={"prompt": "Hi"})).status_code == 403
        assert (await c.get("/", follow_redirects=False)).headers["location"] == "/compare"
        nav = [a.attrs["href"] for a in parse_html((await c.get("/compare")).text).one("nav").all("a")]
        assert nav == ["/compare", "/leaderboard"]


def test_modes_are_checked_at_start_up() -> None:
    with pytest.raises(SettingsError, match="--modes: .*'duel'"):
        load_settings({"modes": ["anony", "duel"]})
    assert load_settings({"modes": ["anony,chat"]}).modes == ["anony", "chat"]
    assert load_settings().open_modes == ("anony", "named", "chat")
    assert load_settings({"api_key": ["k" * 16]}).open_modes == ("anony",)


def test_an_api_key_closes_named_battles_on_a_real_server(tmp_path: Path) -> None:
    """The penetration test's request: `--api-key` set, a named battle through /api/v1 is a 403."""
    (tmp_path / "models.toml").write_text(scripted_models_toml({"alpha": ["A."], "beta": ["B."]}))
    server = ArenaServer(tmp_path, "--models", str(tmp_path / "models.toml"), "--api-key", "k" * 16)
    try:
        body = {"prompt": "Hi", "mode": "named", "models": ["alpha", "beta"], "wait": True}
        r = httpx.post(server.base + "/api/v1/battles", json=body, timeout=30)
        assert r.status_code == 403, r.text
        assert httpx.get(server.base + "/v1/models", timeout=10).status_code == 401
        assert httpx.post(server.base + "/api/v1/battles", json={"prompt": "Hi"}, timeout=30).status_code == 201
    finally:
        server.stop()


# -- item 4: anony_only models ----------------------------------------------------------------


@pytest.fixture
def anony_only_app(tmp_path: Path) -> Litestar:
    text = scripted_models_toml({"alpha": ["A."], "beta": ["B."], "gamma": ["C."]})
    text = text.replace('id = "alpha"\n', 'id = "alpha"\nanony_only = true\n')
    (tmp_path / "models.toml").write_text(text)
    settings = Settings(
        models=tmp_path / "models.toml", db=tmp_path / "arena.db", generation_rate="1000/1", model_rate="1000/1"
    )
    return create_app(settings)


async def test_an_anony_only_model_is_only_in_anonymous_battles(anony_only_app: Litestar) -> None:
    async with serve(anony_only_app) as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "mode": "named", "models": ["alpha", "beta"]})
        assert r.status_code == 403 and r.json()["error"]["param"] == "models", r.text
        for mode, models in (("named", ["alpha", "beta"]), ("direct", ["alpha"])):
            r = await c.post("/battle", data={"prompt": "Hi", "mode": mode, "models": models}, headers=await csrf(c))
            assert r.status_code == 403 and "only in anonymous battles" in r.text
        r = await c.post(
            "/v1/chat/completions", json={"model": "alpha", "messages": [{"role": "user", "content": "Hi"}]}
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_anony_only", r.text
        assert "alpha" not in {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
        for path in ("/compare", "/chat"):
            options = {o.attrs["value"] for o in parse_html((await c.get(path)).text).all("option")}
            assert options == {"beta", "gamma"}, path
        body = {"prompt": "Hi", "mode": "named", "models": ["beta", "gamma"], "wait": True}
        assert (await c.post("/api/v1/battles", json=body)).status_code == 201
        drawn: set[str] = set()
        for n in range(30):
            battle = await c.app.state.arena.start(f"Hi {n}", mode="anony", voter_hash="v" * 32)
            drawn |= set(battle.models.values())
            await c.app.state.arena.wait(battle)
        assert "alpha" in drawn  # still in anonymous rotation


async def test_a_shared_voted_battle_names_its_models_read_only(arena) -> None:
    async with arena({"alpha": ["A."], "beta": ["B."]}) as owner:
        battle_id = (await owner.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})).json()["id"]
        pair = (await owner.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).json()
        async with other_visitor(owner.app) as other:
            view = parse_html((await other.get(f"/battle/{battle_id}")).text).one(id_="battle")
        names = [n.text() for n in view.all("span", cls="model-name")]
        assert names == [f"Scripted {pair['model_a']}", f"Scripted {pair['model_b']}"]
        assert view.all("button") == [] and view.all("form") == []
