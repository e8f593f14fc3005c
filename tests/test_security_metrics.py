"""Hole 8: public /metrics carries no model id (a voter polling it during an anonymous battle
learns nothing of who is answering); an admin (token or session) gets the per-model series."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

MODELS = {"alpha-model": [" ".join(["word"] * 30)], "beta-model": [" ".join(["word"] * 30)]}
BEARER = {"Authorization": "Bearer admin-secret-token"}


def _labels(text: str) -> set[str]:
    return {name for family in text_string_to_metric_families(text) for s in family.samples for name in s.labels}


def _streams(text: str) -> float:
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "arena_streams")


async def test_polling_metrics_during_a_battle_finds_no_model_id(arena) -> None:
    async with arena(MODELS, admin_token="admin-secret-token") as c:
        for model_id in MODELS:
            c.app.state.models.get(model_id).engine.delay = 0.02  # ~0.6 s per answer
        r = await c.post("/api/v1/battles", json={"prompt": "Hi?"})
        battle_id = r.json()["id"]
        polls, seen_running = [], 0.0
        while (await c.get(f"/api/v1/battles/{battle_id}")).json()["status"] == "generating":
            text = (await c.get("/metrics")).text
            polls.append(text)
            seen_running = max(seen_running, _streams(text))
            await asyncio.sleep(0.05)
        assert len(polls) >= 3 and seen_running == 2  # polled while both sides were generating
        for text in polls:
            assert "alpha" not in text and "beta" not in text
            assert "model" not in _labels(text)
        admin = (await c.get("/metrics", headers=BEARER)).text  # the same view an admin gets
        assert 'model="alpha-model"' in admin and 'model="beta-model"' in admin


async def test_public_metrics_still_count_requests(arena) -> None:
    async with arena(MODELS) as c:
        await c.get("/health")
        text = (await c.get("/metrics")).text
        assert 'arena_requests_total{route="/health",status="200"}' in text
        assert "arena_waiting_requests" in text
