"""Before the vote nothing a voter can reach names the models: response headers, cookies, error
pages, the page and its stream, the JSON state and /metrics, polled while both sides generate.
Dropped /v1 streams stop their generation at once; dropped battle streams leave nothing running
once the battle's answers are stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.helpers.arena import asgi_stream, csrf, parse_html, serve
from tests.helpers.faults import Fault, Plan, install

NAMES = ["zqalpha", "zqbeta"]
REPLY = " ".join(f"w{i}" for i in range(30))


def leaks(text: str) -> list[str]:
    low = text.lower()
    return [n for n in NAMES if n in low]


def response_text(r: httpx.Response) -> str:
    cookies = "; ".join(f"{k}={v}" for k, v in r.cookies.items())
    return json.dumps(dict(r.headers)) + cookies + r.text


def slow_app(make_app: Any, delay: float) -> tuple[Any, Plan]:
    app = make_app({n: [REPLY] for n in NAMES}, battle_rate="1000/1", generation_rate="1000/1", model_rate="1000/1")
    plan = install(app.state.models, Plan({n: Fault("slow", delay=delay) for n in NAMES}))
    return app, plan


async def test_nothing_a_voter_reaches_names_a_model_before_the_vote(make_app) -> None:
    app, plan = slow_app(make_app, 0.05)
    async with serve(app) as c:
        seen: list[str] = []
        r = await c.post("/battle", data={"prompt": "Hello?", "mode": "anony"}, headers=await csrf(c))
        assert r.status_code == 200
        seen.append(response_text(r))
        battle_id = parse_html(r.text).one(id_="battle").attrs["data-battle"]
        while not any(e.running for e in plan.engines.values()):
            await asyncio.sleep(0.01)
        polls = [
            c.get("/metrics"),
            c.get(f"/battle/{battle_id}"),
            c.get(f"/api/v1/battles/{battle_id}"),
            c.post(f"/battle/{battle_id}/vote", data={"winner": "tie"}, headers=await csrf(c)),  # 409: busy
            c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"}),
            c.get("/battle/no-such-battle"),
            c.get("/api/v1/battles/no-such-battle"),
            c.post(f"/battle/{battle_id}/turn", data={"prompt": "x"}, headers=await csrf(c)),
            c.get("/no-such-page"),
            c.get("/"),
        ]
        for answer in await asyncio.gather(*polls):
            seen.append(response_text(answer))
        assert any(e.running for e in plan.engines.values()), "the battle ended before the polls"
        chunks = []
        async for chunk in asgi_stream(app, f"/battle/{battle_id}/events"):
            chunks.append(chunk.decode())
        seen.append("".join(chunks))
        assert [t for t in seen if leaks(t)] == []
        # and the check can see a name: after the vote the page reveals both
        vote = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})
        assert vote.status_code == 200
        assert sorted(leaks((await c.get(f"/battle/{battle_id}")).text)) == NAMES


async def _drop_v1(app: Any, model: str) -> None:
    """POST a streaming /v1 request straight through ASGI and disconnect after the first chunk
    (httpx's ASGI transport would buffer the whole answer)."""
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}).encode()
    sent, gone, out = False, asyncio.Event(), asyncio.Queue[dict[str, Any]]()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50001),
        "server": ("testserver", 80),
        "state": {},
    }
    task = asyncio.create_task(app(scope, receive, out.put))
    start = await asyncio.wait_for(out.get(), 10)
    assert start["status"] == 200, start
    while not (await asyncio.wait_for(out.get(), 10)).get("body"):
        pass
    gone.set()
    await asyncio.wait_for(task, 10)


async def test_dropped_streams_leave_no_generation_running(make_app) -> None:
    app, plan = slow_app(make_app, 0.05)
    async with serve(app) as c:
        battles = []
        for _ in range(10):
            r = await c.post("/api/v1/battles", json={"prompt": "Hi"})
            assert r.status_code == 201
            battles.append(r.json()["id"])
        for battle_id in battles:  # open each battle's stream and drop it after the first bytes
            stream = asgi_stream(app, f"/api/v1/battles/{battle_id}/events")
            await anext(stream)
            await stream.aclose()
        # battles keep generating after a drop (the answers are stored for a reconnect) and end
        await asyncio.gather(*(app.state.arena.wait(app.state.arena.live[b]) for b in battles))
        assert sum(e.running for e in plan.engines.values()) == 0
        started = sum(e.started for e in plan.engines.values())

        await asyncio.gather(*(_drop_v1(app, NAMES[i % 2]) for i in range(20)))
        for _ in range(50):  # the aborts propagate within a few event-loop turns
            if sum(e.running for e in plan.engines.values()) == 0:
                break
            await asyncio.sleep(0.01)
        assert sum(e.running for e in plan.engines.values()) == 0
        assert sum(e.started for e in plan.engines.values()) == started + 20
        assert sum(app.state.models.get(n).stats.running for n in NAMES) == 0
