"""The JSON arena API under /api/v1, in-process over scripted engines."""

from __future__ import annotations

import json

import pytest

from tests.helpers.arena import db_rows, parse_sse, read_events


async def test_whole_battle(arena) -> None:
    async with arena({"alpha": ["Alpha one.", "Alpha two."], "beta": ["Beta one.", "Beta two."]}) as c:
        r = await c.post("/api/v1/battles", json={"prompt": "First?", "wait": True})
        assert r.status_code == 201
        body = r.json()
        battle_id = body["id"]
        (turn,) = body["turns"]
        assert set(turn) == {"a", "b"}
        assert {turn["a"]["text"], turn["b"]["text"]} == {"Alpha one.", "Beta one."}
        assert turn["a"]["finish_reason"] is turn["b"]["finish_reason"] is None  # until the vote (issue 19)

        state = (await c.get(f"/api/v1/battles/{battle_id}")).json()
        assert state == {"id": battle_id, "mode": "anony", "status": "open", "turns": body["turns"], "models": None}

        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Second?", "wait": True})
        assert r.status_code == 201 and r.json()["turn"] == 2
        assert len(r.json()["turns"]) == 2
        a_is_alpha = r.json()["turns"][0]["a"]["text"].startswith("Alpha")
        assert r.json()["turns"][1]["a"]["text"] == ("Alpha two." if a_is_alpha else "Beta two.")
        alpha = c.app.state.models.get("alpha").engine
        assert [m.content for m in alpha.requests[1].messages] == ["First?", "Alpha one.", "Second?"]

        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 200
        expected = {"model_a": "alpha", "model_b": "beta"} if a_is_alpha else {"model_a": "beta", "model_b": "alpha"}
        assert r.json() == expected
        state = (await c.get(f"/api/v1/battles/{battle_id}")).json()
        assert state["status"] == "voted"
        assert state["turns"][1]["a"]["finish_reason"] == state["turns"][1]["b"]["finish_reason"] == "stop"
        assert state["models"] == {"a": expected["model_a"], "b": expected["model_b"]}
        vote = db_rows(c.app, "SELECT * FROM votes")[0]
        assert (vote["winner"], vote["turns"], vote["mode"]) == ("model_a", 2, "anony")
        assert vote["model_a"] == expected["model_a"]
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Third?"})
        assert r.status_code == 409  # the battle is over


async def test_events_without_wait(arena) -> None:
    async with arena({"alpha": ["a b c d e f"], "beta": ["g h i j k l"]}) as c:
        for model in ("alpha", "beta"):
            c.app.state.models.get(model).engine.delay = 0.02
        r = await c.post("/api/v1/battles", json={"prompt": "Go"})
        assert r.status_code == 201 and set(r.json()) == {"id"}
        battle_id = r.json()["id"]
        assert (await c.get(f"/api/v1/battles/{battle_id}")).json()["status"] == "generating"
        events = await read_events(c.app, f"/api/v1/battles/{battle_id}/events", 100)
        assert events[-1].event == "done" and json.loads(events[-1].data) == {}
        text = {"a": "", "b": ""}
        for e in events:
            data = json.loads(e.data)
            if e.event in ("a", "b"):
                assert e.id is not None and set(data) == {"text"}
                text[e.event] += data["text"]
            elif e.event in ("a-set", "b-set") and not data["finished"]:
                text[e.event[0]] = data["text"] + text[e.event[0]]
        finals = {e.event[0]: json.loads(e.data) for e in events if e.event.endswith("-set")}
        # finish_reason waits for the vote (issue 19)
        assert all(f["finished"] and f["finish_reason"] is None and f["error"] is None for f in finals.values())
        assert sorted(text.values()) == ["a b c d e f", "g h i j k l"]
        assert {f["text"] for f in finals.values()} == set(text.values())
        assert (await c.get(f"/api/v1/battles/{battle_id}")).json()["status"] == "open"


async def test_named_battle(arena) -> None:
    async with arena({"alpha": ["A"], "beta": ["B"], "gamma": ["C"]}) as c:
        r = await c.post(
            "/api/v1/battles", json={"prompt": "Hi", "mode": "named", "models": ["gamma", "alpha"], "wait": True}
        )
        assert r.status_code == 201
        battle_id = r.json()["id"]
        assert [r.json()["turns"][0][s]["text"] for s in "ab"] == ["C", "A"]
        state = (await c.get(f"/api/v1/battles/{battle_id}")).json()
        assert state["mode"] == "named" and state["models"] == {"a": "gamma", "b": "alpha"}
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).json() == {
            "model_a": "gamma",
            "model_b": "alpha",
        }
        assert [tuple(r) for r in db_rows(c.app, "SELECT mode, model_a, model_b FROM votes")] == [
            ("named", "gamma", "alpha")
        ]
        assert {r[0] for r in db_rows(c.app, "SELECT mode FROM pair_counts")} == {"named"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"prompt": "Hi", "mode": "named", "models": ["alpha", "alpha"]}, 400),
        ({"prompt": "Hi", "mode": "named", "models": ["alpha"]}, 400),
        ({"prompt": "Hi", "mode": "named"}, 400),
        ({"prompt": "Hi", "mode": "named", "models": ["alpha", "nope"]}, 400),
        ({"prompt": "Hi", "mode": "direct", "models": ["alpha"]}, 400),
        ({"prompt": "Hi", "mode": "chaos"}, 400),
        ({"prompt": 5}, 400),
        ({"prompt": "Hi", "wait": "yes"}, 400),
        ({"prompt": "Hi", "extra": 1}, 400),
        ({}, 400),
    ],
)
async def test_bad_new_battle(arena, body: dict[str, object], status: int) -> None:
    async with arena() as c:
        r = await c.post("/api/v1/battles", json=body)
        assert r.status_code == status, r.text
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert db_rows(c.app, "SELECT COUNT(*) FROM battles")[0][0] == 0


async def test_bad_json_is_400(arena) -> None:
    async with arena() as c:
        r = await c.post("/api/v1/battles", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400
        r = await c.post(
            "/api/v1/battles", content=b'{"prompt": "Hi"}', headers={"content-type": "application/json; charset=utf-8"}
        )
        assert r.status_code == 201


async def test_events_are_sse(arena) -> None:
    async with arena() as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        events = await c.get(f"/api/v1/battles/{r.json()['id']}/events")
        assert events.headers["content-type"].startswith("text/event-stream")
        assert events.headers["cache-control"] == "no-cache"
        assert [e.event for e in parse_sse(events.text)] == ["a-set", "b-set", "done"]
