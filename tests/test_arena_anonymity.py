"""Anonymity: until the vote, no response of an anonymous battle names its models, whether HTML,
SSE payloads, headers, element ids or error messages, on the pages and the JSON API alike.

A byte search is the right tool here: a name must not appear anywhere, in any form."""

from __future__ import annotations

import asyncio

import httpx

from tests.helpers import arena as helpers
from tests.helpers.arena import Client, csrf, parse_html, read_events

MODELS = {"zorblax-7b": ["Zero one two three four five six seven."], "quuxium-v2": ["Eight nine ten eleven twelve."]}
NEEDLES = ["zorblax", "quuxium", "Scripted zorblax-7b", "Scripted quuxium-v2", "Test Org"]


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    def __call__(self, what: str, r: httpx.Response) -> httpx.Response:
        head = f"{r.status_code}\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        self.seen.append((what, head.encode() + b"\n\n" + r.content))
        return r

    def add(self, what: str, data: bytes) -> None:
        self.seen.append((what, data))

    def leaks(self) -> list[tuple[str, str]]:
        return [
            (what, needle) for what, data in self.seen for needle in NEEDLES if needle.lower().encode() in data.lower()
        ]


async def test_nothing_names_the_models_before_the_vote(arena) -> None:
    rec = Recorder()
    async with arena(MODELS, max_turns=3) as c:
        for model in MODELS:
            c.app.state.models.get(model).engine.delay = 0.02
        h = await csrf(c)
        rec("GET /", await c.get("/"))
        r = rec("POST /battle", await c.post("/battle", data={"prompt": "Who are you?", "mode": "anony"}, headers=h))
        battle_id = parse_html(r.text).one(id_="battle").attrs["data-battle"]
        path = f"/battle/{battle_id}"

        early = await read_events(c.app, f"{path}/events", 4)  # live, mid-stream
        rec.add("SSE live", "\n".join(f"{e.event} {e.id} {e.data}" for e in early).encode())
        rec("vote too early", await c.post(f"{path}/vote", data={"winner": "tie"}, headers=h))
        rec("API vote too early", await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"}))
        rec("API state while streaming", await c.get(f"/api/v1/battles/{battle_id}"))
        rec("turn while busy", await c.post(f"{path}/turn", data={"prompt": "More"}, headers=h))
        rec("SSE", await c.get(f"{path}/events"))
        rec("SSE resumed", await c.get(f"{path}/events", headers={"last-event-id": "2"}))
        rec("API SSE", await c.get(f"/api/v1/battles/{battle_id}/events"))
        rec("page", await c.get(path))
        rec("bad winner", await c.post(f"{path}/vote", data={"winner": "zorb"}, headers=h))
        rec("bad feedback", await c.post(f"{path}/feedback", data={"message_id": "1", "kind": "up"}, headers=h))
        rec("turn 2", await c.post(f"{path}/turn", data={"prompt": "And?"}, headers=h))
        rec("stop", await c.post(f"{path}/stop", headers=h))
        rec("SSE turn 2", await c.get(f"{path}/events"))
        rec("regenerate", await c.post(f"{path}/regenerate", headers=h))
        rec("SSE regenerated", await c.get(f"{path}/events"))
        rec("too long", await c.post(f"{path}/turn", data={"prompt": "x" * 9000}, headers=h))
        rec("API turn 3", await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Last", "wait": True}))
        rec("API too many turns", await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "4"}))
        rec("API state", await c.get(f"/api/v1/battles/{battle_id}"))
        rec("API new", await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True}))

        # A side that fails, and a model that goes down: the errors say "Model A/B" only.
        broken = c.app.state.models.get("zorblax-7b").engine
        broken.fail_after = 2
        r = rec("failing", await c.post("/battle", data={"prompt": "Fail", "mode": "anony"}, headers=h))
        failed_id = parse_html(r.text).one(id_="battle").attrs["data-battle"]
        rec("SSE failing", await c.get(f"/battle/{failed_id}/events"))
        rec("API failed state", await c.get(f"/api/v1/battles/{failed_id}"))
        rec("vote on failed", await c.post(f"/battle/{failed_id}/vote", data={"winner": "tie"}, headers=h))
        rec("API vote on failed", await c.post(f"/api/v1/battles/{failed_id}/vote", json={"winner": "tie"}))
        broken.fail_after = None
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        rec("API battle", r)
        c.app.state.models.get("quuxium-v2").state = "down"
        down_id = r.json()["id"]
        rec(
            "API turn, model down",
            await c.post(f"/api/v1/battles/{down_id}/messages", json={"prompt": "?", "wait": True}),
        )
        rec("SSE model down", await c.get(f"/battle/{down_id}/events"))
        rec("no pair", await c.post("/battle", data={"prompt": "Hi", "mode": "anony"}, headers=h))
        c.app.state.models.get("quuxium-v2").state = "active"
        await asyncio.sleep(0)

        assert len(rec.seen) > 30
        assert rec.leaks() == []

        # The check can fail: after the vote the same responses do name the models.
        after = Recorder()
        after("vote", await c.post(f"{path}/vote", data={"winner": "model_a"}, headers=h))
        after("API state", await c.get(f"/api/v1/battles/{battle_id}"))
        after("SSE", await c.get(f"{path}/events"))
        assert {needle for _, needle in after.leaks()} == set(NEEDLES) - {"Test Org"}


async def test_error_ids_and_labels_are_side_letters(arena) -> None:
    async with arena(MODELS) as c:
        r = await c.post("/battle", data={"prompt": "Hi", "mode": "anony"}, headers=await csrf(c))
        tree = parse_html(r.text)
        ids = {n.attrs["id"] for n in tree if "id" in n.attrs}
        assert ids == {"arena", "battle", "answer-a", "answer-b", "controls"}
        assert [h.text() for h in tree.all("h3")] == ["Model A", "Model B"]
        classes = set().union(*(n.classes for n in tree))
        assert not any(m in cls for m in MODELS for cls in classes)
        await helpers.finish(c, tree.one(id_="battle").attrs["data-battle"])


async def _named_battle_reveals(client: Client) -> None:
    r = await client.post(
        "/api/v1/battles", json={"prompt": "Hi", "mode": "named", "models": list(MODELS), "wait": True}
    )
    state = (await client.get(f"/api/v1/battles/{r.json()['id']}")).json()
    assert state["models"] == {"a": "zorblax-7b", "b": "quuxium-v2"}


async def test_named_battles_are_not_anonymous(arena) -> None:
    async with arena(MODELS) as c:
        await _named_battle_reveals(c)
