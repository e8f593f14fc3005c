"""Engine faults through the fault-injecting wrapper (tests/helpers/faults.py): one model raises
mid-stream, hangs past the timeout, fails to load or runs slowly. Only its battles are affected,
each marked; after N consecutive failures it goes down and comes back once a probe passes; the
other models keep serving throughout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.arena import Client, serve
from tests.helpers.faults import Fault, Plan, install

REPLY = "one two three four five six"
MODELS = {"alpha": [REPLY], "beta": [REPLY], "gamma": [REPLY]}
FAILED = "failed to answer. This battle cannot be voted on; please start a new one."


async def battle(c: Client, *models: str) -> dict[str, Any]:
    r = await c.post("/api/v1/battles", json={"prompt": "Hi", "mode": "named", "models": list(models), "wait": True})
    assert r.status_code == 201, r.text
    return r.json()["turns"][0]


async def healthy_battle(c: Client) -> None:
    turn = await battle(c, "alpha", "beta")
    assert [turn[s]["finish_reason"] for s in "ab"] == ["stop", "stop"]
    assert turn["a"]["text"] == REPLY


def faulty_app(make_app: Callable[..., Any], fault: Fault, **settings: Any) -> tuple[Any, Plan]:
    app = make_app(MODELS, **settings)
    plan = install(app.state.models, Plan({"gamma": fault}))
    app.state.models.probe_interval = 0.05
    app.state.models.probe_timeout = 0.1
    return app, plan


@pytest.mark.parametrize(
    ("fault", "settings"),
    [(Fault("raise", after=2), {}), (Fault("hang", after=1), {"generation_timeout": 0.3})],
    ids=["raise-mid-stream", "hang-past-timeout"],
)
async def test_a_failing_model_fails_only_its_battles_goes_down_and_comes_back(make_app, fault, settings) -> None:
    app, plan = faulty_app(make_app, fault, **settings)
    async with serve(app) as c:
        registry = app.state.models
        limit = registry.failure_limit
        for n in range(limit):
            # the others are served between, and during, the failing battles
            turn, _ = await asyncio.gather(battle(c, "alpha", "gamma"), healthy_battle(c))
            assert turn["b"]["finish_reason"] == "error"
            assert turn["b"]["error"] == f"The model {FAILED}"
            assert turn["a"]["finish_reason"] == "stop" and turn["a"]["text"] == REPLY
            assert registry.get("gamma").failures == n + 1
        gamma = registry.get("gamma")
        assert gamma.state == "down" and f"down after {limit} consecutive failures" in gamma.error
        assert fault.injected >= limit

        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "mode": "named", "models": ["alpha", "gamma"]})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert "consecutive failures" in r.json()["error"]["message"]
        for _ in range(5):  # anonymous battles draw only from the models that are up
            r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
            assert r.status_code == 201
            live = app.state.arena.live[r.json()["id"]]
            assert sorted(live.models.values()) == ["alpha", "beta"]

        await asyncio.sleep(0.3)  # probes keep failing while the fault lasts
        assert gamma.state == "down" and "[probe: " in gamma.error
        fault.heal()
        for _ in range(100):
            if gamma.state == "active":
                break
            await asyncio.sleep(0.05)
        assert gamma.state == "active" and gamma.error == "" and gamma.failures == 0
        turn = await battle(c, "alpha", "gamma")
        assert turn["b"]["finish_reason"] == "stop" and turn["b"]["text"] == REPLY
        assert plan.engines["gamma"].running == 0  # nothing left generating on the faulty engine


async def test_a_model_that_fails_to_load_is_down_and_a_probe_brings_it_back(make_app) -> None:
    fault = Fault("load")
    app, _ = faulty_app(make_app, fault)
    async with serve(app) as c:
        gamma = app.state.models.get("gamma")
        assert gamma.state == "down" and "injected fault: gamma failed to load" in gamma.error
        await healthy_battle(c)
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "mode": "named", "models": ["gamma", "beta"]})
        assert r.status_code == 503 and "failed to load" in r.json()["error"]["message"]
        await asyncio.sleep(0.2)
        assert fault.injected >= 2  # the probe tried loading again, and failed again
        fault.heal()
        for _ in range(100):
            if gamma.state == "active":
                break
            await asyncio.sleep(0.05)
        assert gamma.state == "active" and gamma.loaded
        turn = await battle(c, "gamma", "beta")
        assert turn["a"]["text"] == REPLY


async def test_a_slow_model_slows_only_its_own_battles(make_app) -> None:
    fault = Fault("slow", delay=0.2)
    app, plan = faulty_app(make_app, fault)
    async with serve(app) as c:
        slow = asyncio.create_task(battle(c, "gamma", "alpha"))
        for _ in range(3):  # three whole battles while the slow one is still generating
            await healthy_battle(c)
        assert not slow.done()
        turn = await slow
        assert turn["a"]["finish_reason"] == "stop" and turn["a"]["text"] == REPLY
        gamma = app.state.models.get("gamma")
        assert gamma.state == "active" and gamma.failures == 0
        assert plan.engines["gamma"].running == 0
