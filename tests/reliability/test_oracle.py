"""Issue 19, item 3, against the real `arena serve` and its --model-rate: after an anonymous
battle, a model inside it and a model outside it take as many /v1 calls before a 429, refused
calls (a context overflow, after admission) counting for neither. The in-process version is in
tests/test_security_robust.py; bench/reliability.py prints the counts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.crash import models_file
from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

MODELS = {"alpha": ["Alpha."], "beta": ["Beta."], "gamma": ["Gamma."]}
OVERFLOW = " ".join(["word"] * 100)  # over the scripted 64-token context


def _before_429(client: httpx.Client, model: str, content: str) -> int | None:
    for n in range(20):
        r = client.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]}
        )
        if r.status_code == 429:
            return n
    return None


def test_the_model_rate_tells_no_battle_model(tmp_path: Path) -> None:
    flags = ("--models", str(models_file(tmp_path, MODELS)), "--model-rate", "6/60", "--generation-rate", "1000/60")
    server = ArenaServer(tmp_path, *flags)
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            battle = client.post("/api/v1/battles", json={"prompt": "Hi", "wait": True}).json()["id"]
            assert client.post(f"/api/v1/battles/{battle}/vote", json={"winner": "tie"}).status_code == 200
            drawn = client.get(f"/api/v1/battles/{battle}").json()["models"]
            inside, outside = drawn["a"], next(m for m in MODELS if m not in drawn.values())
            refused = [_before_429(client, m, OVERFLOW) for m in (inside, outside)]
            served = [_before_429(client, m, "Hi") for m in (inside, outside)]
    finally:
        server.stop()
    assert refused == [None, None]  # refused calls never reach a 429 (it was 5 and 6)
    assert served == [6, 6]
