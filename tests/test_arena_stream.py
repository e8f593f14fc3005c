"""One SSE stream per turn: both sides stream independently, a reconnect replays what is stored
instead of generating again, and model output stays text."""

from __future__ import annotations

import asyncio
import json

from tests.helpers.arena import SSE, Client, final_sets, finish, parse_html, parse_sse, read_events

LONG = " ".join(f"w{i}" for i in range(30))


async def new_battle(client: Client, wait: bool) -> str:
    r = await client.post("/api/v1/battles", json={"prompt": "Hello?", "wait": wait})
    assert r.status_code == 201
    return str(r.json()["id"])


def engine_calls(client: Client) -> int:
    return sum(len(client.app.state.models.get(m).engine.requests) for m in ("alpha", "beta"))


def slow(client: Client, reply: str = LONG, delay: float = 0.02) -> None:
    for model in ("alpha", "beta"):
        engine = client.app.state.models.get(model).engine
        engine.replies, engine.delay = [reply], delay


def streamed_text(events: list[SSE]) -> dict[str, str]:
    """Each side's text as the page shows it before the final ``set``: the first snapshot, then
    the deltas appended (both escaped HTML)."""
    text: dict[str, str] = {}
    for e in events:
        if e.event in ("a-set", "b-set") and e.event[0] not in text:
            stream = parse_html(e.data).all("div", cls="stream")
            text[e.event[0]] = stream[0].text() if stream else ""
        elif e.event in ("a", "b"):
            node = parse_html(e.data)
            assert [n.tag for n in node] == [], f"markup in a delta: {e.data!r}"
            text[e.event] = text.get(e.event, "") + node.text()
    return text


async def test_reconnect_to_a_finished_turn_replays(arena) -> None:
    async with arena() as c:
        battle_id = await new_battle(c, wait=True)
        assert engine_calls(c) == 2
        first = await finish(c, battle_id)
        again = await finish(c, battle_id)
        assert [(e.event, e.data) for e in first] == [(e.event, e.data) for e in again]
        assert [e.event for e in first] == ["a-set", "b-set", "done"]
        with_id = await c.get(f"/battle/{battle_id}/events", headers={"last-event-id": "1"})
        assert parse_sse(with_id.text)[-1].event == "done"
        api = await c.get(f"/api/v1/battles/{battle_id}/events")
        events = parse_sse(api.text)
        assert [e.event for e in events] == ["a-set", "b-set", "done"]
        assert {json.loads(e.data)["text"] for e in events[:2]} == {"Hello there.", "Hi!"}
        assert all(json.loads(e.data)["finished"] for e in events[:2])
        assert engine_calls(c) == 2  # nothing generated again


async def test_reconnect_mid_stream_resumes_after_the_last_id(arena) -> None:
    async with arena() as c:
        slow(c)
        battle_id = await new_battle(c, wait=False)
        seen = await read_events(c.app, f"/battle/{battle_id}/events", 8)  # then the client drops
        ids = [int(e.id) for e in seen if e.id is not None]
        assert ids and all(e.event in ("a", "b") for e in seen if e.id is not None)
        assert not any(e.event == "done" for e in seen)
        r = await c.get(f"/battle/{battle_id}/events", headers={"last-event-id": str(ids[-1])})
        rest = parse_sse(r.text)
        assert rest[0].event in ("a", "b") and int(rest[0].id or -1) == ids[-1] + 1  # no snapshot
        assert [int(e.id) for e in rest if e.id is not None] == list(range(ids[-1] + 1, ids[-1] + 1 + len(rest)))
        assert streamed_text(seen + rest) == {"a": LONG, "b": LONG}  # nothing lost, nothing twice
        assert rest[-1].event == "done"
        assert engine_calls(c) == 2


async def test_a_late_reader_gets_a_snapshot_then_follows(arena) -> None:
    async with arena() as c:
        slow(c)
        battle_id = await new_battle(c, wait=False)
        await asyncio.sleep(0.2)  # some words are out before this reader comes
        events = await finish(c, battle_id)
        snapshot = {e.event[0]: parse_html(e.data).one("div", cls="stream").text() for e in events[:2]}
        assert set(snapshot) == {"a", "b"} and all(snapshot.values())  # already some text
        assert all(e.id is None for e in events[:2])
        assert streamed_text(events) == {"a": LONG, "b": LONG}
        assert {" ".join(n.text().split()) for n in final_sets(events).values()} == {LONG}
        assert engine_calls(c) == 2


async def test_reconnect_after_restart_replays_from_the_store(arena) -> None:
    async with arena() as c:
        battle_id = await new_battle(c, wait=True)
        del c.app.state.arena.live[battle_id]  # as after a restart, or evicted from memory
        events = await finish(c, battle_id)
        assert [e.event for e in events] == ["a-set", "b-set", "done"]
        texts = {" ".join(n.one("div", cls="md").text().split()) for n in final_sets(events).values()}
        assert texts == {"Hello there.", "Hi!"}
        done = parse_html(events[-1].data)
        assert len(done.all("button", cls="vote-button")) == 4
        assert not any("disabled" in b.attrs for b in done.all("button", cls="vote-button"))
        r = await c.get(f"/battle/{battle_id}/events", headers={"last-event-id": "3"})
        assert [e.event for e in parse_sse(r.text)] == ["a-set", "b-set", "done"]
        assert engine_calls(c) == 2
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200


async def test_both_sides_stream_without_waiting_for_each_other(arena) -> None:
    async with arena() as c:
        fast, slowpoke = (c.app.state.models.get(m).engine for m in ("alpha", "beta"))
        fast.replies, fast.delay = ["quick " * 5], 0.001
        slowpoke.replies, slowpoke.delay = ["slow " * 5], 0.15
        battle_id = await new_battle(c, wait=False)
        battle = c.app.state.arena.live[battle_id]
        fast_side = next(s for s, m in battle.models.items() if m == "alpha")
        events = await finish(c, battle_id)
        order = [e.event for e in events if e.id is not None]
        fast_done = order.index(f"{fast_side}-set")
        slow_side = "b" if fast_side == "a" else "a"
        assert order[:fast_done].count(slow_side) <= 1  # the fast side finished first, alone
        assert order.count(slow_side) == 5


async def test_paragraph_breaks_survive_streaming(arena) -> None:
    reply = "First paragraph.\n\nSecond one\nwith a line break.\n\n\nEnd"
    async with arena({"alpha": [reply], "beta": [reply]}) as c:
        slow(c, reply, 0.01)
        battle_id = await new_battle(c, wait=False)
        events = await finish(c, battle_id)
        assert streamed_text(events) == {"a": reply, "b": reply}


async def test_model_output_is_text_while_streaming_and_after(arena) -> None:
    payload = '<img src=x onerror="window.__xss=1"> and <script>window.__xss=1</script> [x](javascript:alert(1))'
    async with arena({"alpha": [payload], "beta": [payload]}) as c:
        slow(c, payload, 0.005)
        battle_id = await new_battle(c, wait=False)
        events = await finish(c, battle_id)
        assert streamed_text(events) == {"a": payload, "b": payload}  # deltas hold no markup
        for side, node in final_sets(events).items():
            md = node.one("div", cls="md")
            assert {n.tag for n in md} <= {"p", "a"}, side
            assert not md.all("img") and not md.all("script")
            assert all(not a.attrs.get("href", "").startswith("javascript") for a in md.all("a"))
            assert '<img src=x onerror="window.__xss=1">' in md.text()
            assert "<script>window.__xss=1</script>" in md.text()
        api = parse_sse((await c.get(f"/api/v1/battles/{battle_id}/events")).text)
        assert json.loads(api[0].data)["text"] == payload  # the JSON API gives the raw text


async def test_sse_framing_cannot_be_forged_by_the_model(arena) -> None:
    forged = "hi\n\nevent: done\ndata: <b>forged</b>\n\nid: 999\r\nevent: b-set\rdata: x"
    async with arena({"alpha": [forged], "beta": [forged]}) as c:
        slow(c, forged, 0.0)
        battle_id = await new_battle(c, wait=True)
        events = await finish(c, battle_id)
        assert [e.event for e in events] == ["a-set", "b-set", "done"]
        assert all(e.id is None for e in events)
        api = parse_sse((await c.get(f"/api/v1/battles/{battle_id}/events")).text)
        assert [e.event for e in api] == ["a-set", "b-set", "done"]
