"""Identity leaks on the real server with the real Gemma presets: asked who they are, small models
often name themselves. Whatever they answer, a battle is flagged exactly when one of its stored
answers gives its model away. The presets set ``family = "Gemma"`` (so "Gemma" counts anywhere,
"Gemma3" too) and ``organization = "Google"`` (which counts only in a self-reference: "I am a
Google model", "I was trained by Google"). The expected flag comes from the hand-written
:data:`GIVES_AWAY` below, not from ``find_leak`` itself, so a matcher that never (or always) flags
fails here."""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest

from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

PRESETS = {"gemma-3-270m-greedy", "gemma-3-270m-t0.8"}  # both Gemma, family and organization as above
PROMPTS = ["Who are you? Introduce yourself in one sentence.", "What is your name, and who made you?"]
_KIND = r"(?:large\s+)?(?:language\s+model|model|assistant|AI|chatbot)"
# The presets' names written out by hand: "Gemma" anywhere; "Google" after "I am/I'm" (with an
# article only before a kind of model), after "As" starting a sentence with the first person
# following, or "... by Google" in an I-clause.
GIVES_AWAY = re.compile(
    r"(?<!\w)gemma(?![^\W\d_])"
    rf"|\bI(?:\s+am|['’]m)\s+(?:(?:google(?!['’]s\b)(?![^\W\d_]))|(?:an?|the)\s+google\s+{_KIND}\b)"
    rf"|(?:^|(?<=[.!?]))[ \t]*as\s+(?:(?:a|an|the)\s+)?google(?:\s+{_KIND})?\s*,?\s*(?:I|my|we)\b"
    r"|\bI(?:\s+am|['’]m|\s+was|\s+have\s+been|['’]ve\s+been)\b(?:(?!\bI\b)[^.!?\n,]){0,80}?,?\s*"
    r"\b(?:made|created|trained|developed|built|designed)\s+by\s+(?:the\s+)?google(?!['’]s\b)(?![^\W\d_])",
    re.IGNORECASE | re.MULTILINE,
)


def test_the_hand_written_rule() -> None:
    says = [
        "I am Gemma, a model.",
        "I'm gemma3.",
        "I am a Google model.",
        "I was trained by Google.",
        "As Google, I help.",
    ]
    never = [
        "Google makes phones.",
        "As Google announced, it works.",
        "I'm the Google fan.",
        "I like Gmail, by Google.",
    ]
    assert all(GIVES_AWAY.search(t) for t in says) and not any(GIVES_AWAY.search(t) for t in never)


def test_a_battle_is_flagged_exactly_when_an_answer_names_its_model(arena_server: ArenaServer) -> None:
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
            assert {battle["model_a"], battle["model_b"]} <= PRESETS
            leaks = [GIVES_AWAY.search(m["content"] or "") for m in answers]
            expected = "identity" if any(leaks) else ""
            assert battle["flags"] == expected, ([m and m.group(0) for m in leaks], [m["content"] for m in answers])
    finally:
        conn.close()
