"""Issue 19, items 4 and 14: who may act on a battle, which modes and models are open, and what a
battle tells before its vote."""

from __future__ import annotations

import json

from tests.helpers.arena import read_events

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
