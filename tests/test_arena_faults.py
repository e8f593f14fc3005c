"""Faults: one side's engine fails or times out, a model goes down, requests race, a client
gives up while its write is queued. The other side finishes and the server goes on serving."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator

import pytest

from app.engines.base import Delta, Engine, GenerationRequest
from app.store.db import Store
from tests.helpers.arena import Client, csrf, db_rows, final_sets, finish, parse_html, parse_sse

REPLY = "one two three four five six seven eight"


class Crashing(Engine):
    """An engine that breaks in a way no engine is supposed to (not an EngineError)."""

    kind = "crashing"

    def __init__(self, after: int) -> None:
        self.after = after

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        for i in range(self.after):
            yield Delta(f"w{i} ", 1, i + 1, None)
        raise RuntimeError("segfault-ish /secret/path/model.gguf")


def side_of(client: Client, battle_id: str, model: str) -> str:
    battle = client.app.state.arena.live[battle_id]
    return next(side for side, m in battle.models.items() if m == model)


async def check_one_side_failed(c: Client, battle_id: str, broken: str) -> None:
    """The broken model's side shows an error, the other side's full answer, no vote buttons."""
    bad = side_of(c, battle_id, broken)
    good = "b" if bad == "a" else "a"
    events = await finish(c, battle_id)
    sets = final_sets(events)
    error = sets[bad].one("div", cls="error").text()
    assert error == f"Model {bad.upper()} failed to answer. This battle cannot be voted on; please start a new one."
    assert " ".join(sets[good].one("div", cls="md").text().split()) == REPLY
    assert not sets[good].all("div", cls="error")
    done = parse_html(events[-1].data)
    assert done.all("button", cls="vote-button") == []  # voting disabled
    assert "cannot be voted on" in done.one("div", cls="failed").text()
    assert done.one("a", cls="button").text() == "New battle"
    assert done.all("form") == []
    page = parse_html((await c.get(f"/battle/{battle_id}")).text)
    assert page.all("button", cls="vote-button") == []
    assert page.one("article", id_=f"answer-{bad}").one("div", cls="error")
    r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": f"model_{good}"})
    assert r.status_code == 409
    state = (await c.get(f"/api/v1/battles/{battle_id}")).json()
    assert state["status"] == "failed" and state["models"] is None
    # finish_reason waits for a vote (issue 19), and a failed battle never has one
    assert state["turns"][0][bad]["finish_reason"] is None and state["turns"][0][bad]["error"] == error
    assert state["turns"][0][good]["finish_reason"] is None and state["turns"][0][good]["error"] is None
    rows = {
        r["side"]: r for r in db_rows(c.app, "SELECT * FROM messages WHERE battle_id = ? AND side != ''", (battle_id,))
    }
    assert rows[bad]["finish_reason"] == "error" and rows[bad]["error"]  # the stored reason
    assert rows[good]["finish_reason"] == "stop" and rows[good]["content"] == REPLY
    assert db_rows(c.app, "SELECT status FROM battles WHERE id = ?", (battle_id,))[0][0] == "failed"


async def check_still_serving(c: Client, healthy: dict[str, object]) -> None:
    """Another visitor's battle works once the broken engine is healthy again."""
    for model, engine in healthy.items():
        c.app.state.models.get(model).engine = engine
    assert (await c.get("/")).status_code == 200
    r = await c.post("/api/v1/battles", json={"prompt": "Still there?", "wait": True})
    assert r.status_code == 201
    battle_id = r.json()["id"]
    assert all(t["text"] == REPLY and t["error"] is None for t in r.json()["turns"][0].values())
    assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200


@pytest.mark.parametrize("how", ["engine_error", "before_first_token", "crash", "timeout"])
async def test_one_side_fails(arena, how: str) -> None:
    timeout = 0.5 if how == "timeout" else 300.0
    async with arena({"alpha": [REPLY], "beta": [REPLY]}, generation_timeout=timeout) as c:
        entry = c.app.state.models.get("beta")
        original = entry.engine
        if how == "engine_error":
            entry.engine.fail_after = 3
        elif how == "before_first_token":
            entry.engine.fail_after = 0
        elif how == "crash":
            entry.engine = Crashing(after=2)
        else:
            entry.engine.delay = 0.3  # eight words take 2.4 s; the limit is 0.5 s
        r = await c.post("/battle", data={"prompt": "Hello?", "mode": "anony"}, headers=await csrf(c))
        battle_id = parse_html(r.text).one(id_="battle").attrs["data-battle"]
        await check_one_side_failed(c, battle_id, "beta")
        entry.engine = original
        original.fail_after, original.delay = None, 0.0
        await check_still_serving(c, {})


async def test_others_are_served_while_one_engine_hangs(arena) -> None:
    async with arena({"alpha": [REPLY], "beta": [REPLY], "gamma": [REPLY]}, generation_timeout=3) as c:
        c.app.state.models.get("beta").engine.delay = 1.0  # eight words: 8 s, over the 3 s limit
        r = await c.post("/api/v1/battles", json={"prompt": "hang", "mode": "named", "models": ["alpha", "beta"]})
        hanging = r.json()["id"]
        c.app.state.models.get("beta").state = "paused"  # new anonymous battles: alpha and gamma
        for _ in range(3):
            r = await c.post("/api/v1/battles", json={"prompt": "Quick?", "wait": True})
            assert r.status_code == 201
            assert all(t["text"] == REPLY and t["error"] is None for t in r.json()["turns"][0].values())
        assert c.app.state.arena.live[hanging].busy  # still generating: the others did not wait
        await finish(c, hanging)
        assert (await c.get(f"/api/v1/battles/{hanging}")).json()["status"] == "failed"


async def test_model_down_before_a_later_turn(arena) -> None:
    async with arena({"alpha": [REPLY], "beta": [REPLY]}) as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        battle_id = r.json()["id"]
        c.app.state.models.get("beta").state = "down"
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "More?", "wait": True})
        assert r.status_code == 201
        bad = side_of(c, battle_id, "beta")
        assert r.json()["turns"][1][bad]["error"].startswith(f"Model {bad.upper()} failed")
        assert "beta" not in r.text
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 409
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Again?"})
        assert r.status_code == 409


async def test_regenerate_after_a_failure_can_recover(arena) -> None:
    async with arena({"alpha": [REPLY], "beta": [REPLY]}) as c:
        broken = c.app.state.models.get("beta").engine
        broken.fail_after = 2
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        battle_id = r.json()["id"]
        assert (await c.get(f"/api/v1/battles/{battle_id}")).json()["status"] == "failed"
        broken.fail_after = None
        r = await c.post(f"/battle/{battle_id}/regenerate", headers=await csrf(c))
        assert r.status_code == 200
        events = await finish(c, battle_id)
        assert all(not n.all("div", cls="error") for n in final_sets(events).values())
        assert db_rows(c.app, "SELECT status FROM battles WHERE id = ?", (battle_id,))[0][0] == "open"
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200


# -- races ------------------------------------------------------------------------------------


async def test_concurrent_next_turns_start_one(arena) -> None:
    async with arena() as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        battle_id = r.json()["id"]
        replies = await asyncio.gather(
            *[
                c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": f"Next {i}", "wait": True})
                for i in range(3)
            ]
        )
        assert sorted(r.status_code for r in replies) == [201, 409, 409]
        rows = db_rows(c.app, "SELECT turn, content FROM messages WHERE battle_id = ? AND side = ''", (battle_id,))
        assert [r["turn"] for r in rows] == [1, 2]
        assert db_rows(c.app, "SELECT turns FROM battles")[0][0] == 2
        assert len(c.app.state.arena.live[battle_id].history) == 2
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200


async def test_concurrent_regenerates_leave_one_turn(arena) -> None:
    async with arena() as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        battle_id = r.json()["id"]
        headers = await csrf(c)
        replies = await asyncio.gather(*[c.post(f"/battle/{battle_id}/regenerate", headers=headers) for _ in range(3)])
        assert all(r.status_code in (200, 409) for r in replies), [r.status_code for r in replies]
        await finish(c, battle_id)
        battle = c.app.state.arena.live[battle_id]
        assert len(battle.history) == 1 and not battle.busy
        rows = db_rows(c.app, "SELECT side FROM messages WHERE battle_id = ? ORDER BY side", (battle_id,))
        assert [r["side"] for r in rows] == ["", "a", "b"]
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200


async def test_stop_while_the_answer_is_being_stored(arena) -> None:
    """A stop that lands after generation, while the answer is written, must not lose the turn."""
    async with arena() as c:
        store = c.app.state.store
        real_write = store.write
        gate = asyncio.Event()
        writing = asyncio.Event()

        async def slow_answers(fn):  # type: ignore[no-untyped-def]
            if getattr(fn, "__qualname__", "").startswith("add_answer"):
                writing.set()
                await gate.wait()
            return await real_write(fn)

        store.write = slow_answers
        r = await c.post("/api/v1/battles", json={"prompt": "Hi"})
        battle_id = r.json()["id"]
        await asyncio.wait_for(writing.wait(), 5)
        assert (await c.post(f"/battle/{battle_id}/stop", headers=await csrf(c))).status_code == 200
        gate.set()
        events = await asyncio.wait_for(finish(c, battle_id), 10)
        assert {" ".join(n.text().split()) for n in final_sets(events).values()} == {"Hello there.", "Hi!"}
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200


async def test_vote_while_regenerating_is_409(arena) -> None:
    """The old answers are still stored while a regenerate begins; a vote then must not count."""
    async with arena() as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        battle_id = r.json()["id"]
        store = c.app.state.store
        real_write = store.write
        gate, dropping = asyncio.Event(), asyncio.Event()

        async def slow_drops(fn):  # type: ignore[no-untyped-def]
            if getattr(fn, "__qualname__", "").startswith("drop_answers"):
                dropping.set()
                await gate.wait()
            return await real_write(fn)

        store.write = slow_drops
        regenerate = asyncio.create_task(c.post(f"/battle/{battle_id}/regenerate", headers=await csrf(c)))
        await asyncio.wait_for(dropping.wait(), 5)
        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})
        assert r.status_code == 409
        gate.set()
        assert (await regenerate).status_code == 200
        await finish(c, battle_id)
        assert db_rows(c.app, "SELECT COUNT(*) FROM votes")[0][0] == 0
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200


async def test_stop_right_after_start(arena) -> None:
    async with arena() as c:
        service = c.app.state.arena
        battle = await service.start("Hi", mode="anony", voter_hash="x")
        await service.stop(battle.id, client="x")  # before the sides' tasks first ran
        await asyncio.wait_for(service.wait(battle), 5)
        assert {s.finish_reason for s in battle.turn.sides.values()} == {"stopped"}


async def test_writer_survives_a_caller_that_gave_up(tmp_path) -> None:
    store = Store(tmp_path / "arena.db")
    await store.open()
    try:
        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow(conn: sqlite3.Connection) -> int:
            loop.call_soon_threadsafe(started.set)
            time.sleep(0.2)
            conn.execute("INSERT INTO feedback (message_id, battle_id, kind, created) VALUES (1, 'b', 'up', 0)")
            return 1

        task = asyncio.create_task(store.write(slow))
        await started.wait()
        task.cancel()  # e.g. a client that went away
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.wait_for(store.write(lambda conn: 2), 5) == 2
        rows = await store.fetchall("SELECT kind FROM feedback")
        assert [r["kind"] for r in rows] == ["up"]  # the abandoned write still stands
    finally:
        await store.close()


async def test_failed_write_is_reported_and_others_commit(tmp_path) -> None:
    store = Store(tmp_path / "arena.db")
    await store.open()
    try:

        def good(i: int):  # type: ignore[no-untyped-def]
            return lambda conn: (
                conn.execute(
                    "INSERT INTO feedback (message_id, battle_id, kind, created) VALUES (?, 'b', 'up', 0)", (i,)
                ).lastrowid
            )

        def bad(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO feedback (message_id, battle_id, kind, created) VALUES (99, 'b', 'up', 0)")
            raise ValueError("nope")

        outcomes = await asyncio.gather(
            store.write(good(1)), store.write(bad), store.write(good(2)), return_exceptions=True
        )
        assert isinstance(outcomes[1], ValueError)
        rows = await store.fetchall("SELECT message_id FROM feedback ORDER BY message_id")
        assert [r[0] for r in rows] == [1, 2]  # the failed write's insert was rolled back alone
    finally:
        await store.close()


async def test_events_of_unknown_battle_and_bad_last_event_id(arena) -> None:
    async with arena() as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        battle_id = r.json()["id"]
        r = await c.get(f"/battle/{battle_id}/events", headers={"last-event-id": ""})
        assert parse_sse(r.text)[-1].event == "done"  # no id: the whole turn
        for value in ("abc", "-1"):  # not one of ours: refused, not ignored (issue 19)
            r = await c.get(f"/battle/{battle_id}/events", headers={"last-event-id": value})
            assert r.status_code == 400 and "Last-Event-ID" in r.text, value
