"""Preference pairs from real battles (scripted engines, the JSON API), and DPO steps on them."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

from app.store.preferences import export_preferences
from tests.trainer.conftest import need

REPLIES = {
    "good": ["Paris.", "Blue.", "Four.", "Hello there!"],
    "bad": ["Paris is a paris paris.", "mendatang paying", "Write a haiku", "no no no"],
}


async def battle(c: Any, prompts: list[str], winner_model: str | None, *, tie: str = "") -> str:
    """Run a battle over ``prompts`` and vote for ``winner_model`` (or a tie kind)."""
    r = await c.post("/api/v1/battles", json={"prompt": prompts[0], "wait": True})
    battle_id = r.json()["id"]
    for prompt in prompts[1:]:
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": prompt, "wait": True})
    a_text = r.json()["turns"][-1]["a"]["text"]
    a_is_good = a_text in REPLIES["good"]
    winner = tie or ("model_a" if (winner_model == "good") == a_is_good else "model_b")
    assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": winner})).status_code == 200
    return str(battle_id)


async def make_votes(arena: Any, db: Path) -> None:
    """Battles of every kind; ``db`` is the one the ``arena`` fixture uses (tmp_path/arena.db)."""
    async with arena(REPLIES) as c:
        for prompt in ("Capital of France?", "Sky colour?", "2+2?"):
            await battle(c, [prompt], "good")
        await battle(c, ["Hi", "And again?"], "good")  # multi-turn
        await battle(c, ["Tie?"], None, tie="tie")
        await battle(c, ["Both bad?"], None, tie="tie (bothbad)")
        flagged = await battle(c, ["Flag me"], "good")
        conn = sqlite3.connect(db)
        message_id = conn.execute(
            "SELECT id FROM messages WHERE battle_id = ? AND role = 'assistant'", (flagged,)
        ).fetchone()[0]
        conn.close()
        await c.app.state.arena.feedback(flagged, message_id, "flag", client=c.app.state.arena.live[flagged].owner)
        r = await c.post(
            "/api/v1/battles", json={"prompt": "Named", "mode": "named", "models": ["good", "bad"], "wait": True}
        )
        await c.post(f"/api/v1/battles/{r.json()['id']}/vote", json={"winner": "model_a"})


async def test_preferences_from_decisive_anonymous_votes(arena, tmp_path: Path) -> None:
    db = tmp_path / "arena.db"
    await make_votes(arena, db)
    out = tmp_path / "prefs.jsonl"
    conn = sqlite3.connect(db)
    report = export_preferences(conn, out)
    conn.close()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.written == len(rows) == 4
    assert dict(report.left_out) == {"ties": 1, "both bad": 1, "flagged": 1, "named": 1}
    for row in rows:
        assert row["chosen"] in REPLIES["good"] and row["rejected"] in REPLIES["bad"]
        assert row["metadata"]["model_chosen"] == "good" and row["metadata"]["model_rejected"] == "bad"
        assert row["prompt"][-1]["role"] == "user"
    multi = next(r for r in rows if len(r["prompt"]) > 1)
    # the prompt carries the winner's own earlier answer, then the last question
    assert [m["role"] for m in multi["prompt"]] == ["user", "assistant", "user"]
    assert multi["prompt"][0]["content"] == "Hi" and multi["prompt"][1]["content"] in REPLIES["good"]
    assert multi["prompt"][2]["content"] == "And again?" and multi["metadata"]["turns"] == 2
    # the trainer reads the file back as it is
    from trainer.data import load_preferences

    assert len(load_preferences(str(out))) == 4


async def test_dpo_steps_on_exported_preferences(arena, tiny_base: Path, tmp_path: Path) -> None:
    need("trl")
    from trainer.dpo import DPOConfig, train_dpo
    from trainer.progress import Progress

    db = tmp_path / "arena.db"
    await make_votes(arena, db)
    prefs = tmp_path / "prefs.jsonl"
    conn = sqlite3.connect(db)
    export_preferences(conn, prefs)
    conn.close()
    stream = io.StringIO()
    cfg = DPOConfig(
        base=str(tiny_base), data=str(prefs), out=tmp_path / "dpo", lora=True, lora_r=8, steps=6, lr=5e-3,
        batch_size=2, log_steps=1, warmup=0, chat_format="gemma",
    )  # fmt: skip
    info = train_dpo(cfg, progress=Progress(stream, bar=False))
    assert info["status"] == "done" and info["kind"] == "dpo" and info["data"]["pairs"] == 4
    margins = [e["rewards/margins"] for e in info["log"] if "rewards/margins" in e]
    assert margins[-1] > margins[0] and margins[-1] > 0
    assert info["train_loss_last"] < info["train_loss_first"]
    assert (tmp_path / "dpo" / "hf" / "model.safetensors").is_file()
    assert "margin" in stream.getvalue()
