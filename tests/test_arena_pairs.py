"""Drawing the pair of an anonymous battle: never one model twice, in proportion to the weights,
without paused or down models, with the pair's probability stored."""

from __future__ import annotations

import random
from collections import Counter
from itertools import combinations

import pytest

from app.arena.pairs import NotEnoughModels, draw_pair, pair_probability
from tests.helpers.arena import db_rows

WEIGHTS = {"m1": 1.0, "m2": 2.0, "m3": 0.5, "m4": 0.0, "m5": 1.0}


def test_never_one_model_twice_and_never_weight_zero() -> None:
    rng = random.Random(7)
    draws = [draw_pair(list(WEIGHTS.items()), rng) for _ in range(20_000)]
    assert all(a != b for a, b, _ in draws)
    assert not any("m4" in (a, b) for a, b, _ in draws)
    as_a, as_b = Counter(a for a, _, _ in draws), Counter(b for _, b, _ in draws)
    assert set(as_a) == set(as_b) == {"m1", "m2", "m3", "m5"}  # every eligible model, both sides
    for model in as_a:  # the order is random: each model is A about as often as B
        assert abs(as_a[model] - as_b[model]) < 0.1 * (as_a[model] + as_b[model]), model


def test_pairs_follow_the_weights() -> None:
    rng = random.Random(11)
    n = 40_000
    counts = Counter(frozenset((a, b)) for a, b, _ in (draw_pair(list(WEIGHTS.items()), rng) for _ in range(n)))
    eligible = {k: v for k, v in WEIGHTS.items() if v > 0}
    total = 0.0
    for a, b in combinations(sorted(eligible), 2):
        p = pair_probability(eligible, a, b)
        total += p
        sd = (p * (1 - p) / n) ** 0.5
        assert abs(counts[frozenset((a, b))] / n - p) < 5 * sd, (a, b)
    assert total == pytest.approx(1.0)


def test_uniform_without_weights() -> None:
    weights = {f"m{i}": 1.0 for i in range(4)}
    for a, b in combinations(weights, 2):
        assert pair_probability(weights, a, b) == pytest.approx(1 / 6)
    _, _, p = draw_pair(list(weights.items()), random.Random(1))
    assert p == pytest.approx(1 / 6)


def test_returned_probability_is_the_pairs() -> None:
    rng = random.Random(3)
    eligible = {k: v for k, v in WEIGHTS.items() if v > 0}
    for _ in range(200):
        a, b, p = draw_pair(list(WEIGHTS.items()), rng)
        assert p == pytest.approx(pair_probability(eligible, a, b)) == pytest.approx(pair_probability(eligible, b, a))


@pytest.mark.parametrize("candidates", [[], [("m1", 1.0)], [("m1", 1.0), ("m2", 0.0)], [("m1", 0.0), ("m2", 0.0)]])
def test_fewer_than_two_drawable_models(candidates: list[tuple[str, float]]) -> None:
    with pytest.raises(NotEnoughModels):
        draw_pair(candidates, random.Random(0))


async def test_app_draws_from_active_models_only(arena) -> None:
    models = {name: [f"I am {name}."] for name in ("alpha", "beta", "gamma", "delta", "eps", "zeta")}
    async with arena(models, battle_rate="1000/1") as c:
        registry = c.app.state.models
        registry.get("delta").state = "paused"
        registry.get("eps").state = "down"
        zeta = registry.get("zeta")
        zeta.spec = zeta.spec.model_copy(update={"weight": 0.0})
        gamma = registry.get("gamma")
        gamma.spec = gamma.spec.model_copy(update={"weight": 3.0})
        for _ in range(60):
            r = await c.post("/api/v1/battles", json={"prompt": "Who?"})
            assert r.status_code == 201
        rows = db_rows(c.app, "SELECT model_a, model_b, pair_prob FROM battles")
        weights = {"alpha": 1.0, "beta": 1.0, "gamma": 3.0}
        seen = Counter()
        for row in rows:
            a, b = row["model_a"], row["model_b"]
            assert a != b and {a, b} <= set(weights)
            assert row["pair_prob"] == pytest.approx(pair_probability(weights, a, b))
            seen.update((a, b))
        assert set(seen) == set(weights)
        for battle_id in [r["id"] for r in db_rows(c.app, "SELECT id FROM battles")]:
            await c.app.state.arena.wait(c.app.state.arena.live[battle_id])


async def test_app_needs_two_active_models(arena) -> None:
    async with arena() as c:
        c.app.state.models.get("beta").state = "down"
        r = await c.post("/api/v1/battles", json={"prompt": "Who?"})
        assert r.status_code == 503
        assert "beta" not in r.text and "alpha" not in r.text
        assert db_rows(c.app, "SELECT COUNT(*) FROM battles")[0][0] == 0
        c.app.state.models.get("beta").state = "active"
        assert (await c.post("/api/v1/battles", json={"prompt": "Who?", "wait": True})).status_code == 201
