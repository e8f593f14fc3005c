"""Identity leaks on the real server with the real Gemma presets: asked who they are, small models
often name themselves. Whatever they answer, a battle is flagged exactly when one of its stored
answers names its own model by the rules of app.arena.identity (the presets have no family set,
so "Gemma" counts as a self-reference: "I am Gemma", "As Gemma, ...")."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from app.arena.identity import find_leak, identity_of
from app.registry.spec import load_models
from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

PROMPTS = ["Who are you? Introduce yourself in one sentence.", "What is your name, and who made you?"]


def test_a_battle_is_flagged_exactly_when_an_answer_names_its_model(arena_server: ArenaServer) -> None:
    specs = {s.id: s for s in load_models(None)}
    battles = []
    with httpx.Client(base_url=arena_server.base, timeout=300) as http:
        for prompt in PROMPTS:
            r = http.post("/api/v1/battles", json={"prompt": prompt, "wait": True})
            assert r.status_code == 201, r.text
            battles.append(r.json()["id"])
    conn = sqlite3.connect(arena_server.log.parent / "arena.db")
    conn.row_factory = sqlite3.Row
    try:
        for battle_id in battles:
            battle = conn.execute("SELECT * FROM battles WHERE id = ?", (battle_id,)).fetchone()
            answers = conn.execute(
                "SELECT side, content FROM messages WHERE battle_id = ? AND side != ''", (battle_id,)
            ).fetchall()
            models = {"a": battle["model_a"], "b": battle["model_b"]}
            leaks = [find_leak(m["content"], identity_of(specs[models[m["side"]]])) for m in answers]
            expected = "identity" if any(leaks) else ""
            assert battle["flags"] == expected, (leaks, [m["content"] for m in answers])
    finally:
        conn.close()
