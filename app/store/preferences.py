"""Preference pairs from arena votes, for DPO: ``arena battles export --preferences FILE``.

One JSONL line per decisive anonymous vote: ``{prompt, chosen, rejected, metadata}``.

- ``prompt`` is a list of messages ending with the last user turn. In a multi-turn battle each
  side saw its own earlier answers; the prompt carries the winner's, the conversation the voter
  judged better, so ``chosen`` continues the history it was written in.
- ``chosen`` and ``rejected`` are the two last answers; ``metadata`` names the models (never the
  voter) so pairs can be filtered or weighted later.

Left out, and counted: ties and both-bad votes (no preference), named battles (the voter knew the
models), battles that failed, answers with an error or empty text, and battles an answer of which
was flagged, or that was flagged itself (moderation, identity leak: ``battles.flags``).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DECISIVE = ("model_a", "model_b")

VOTES_SQL = (
    "SELECT b.id, b.status, b.created, v.mode, v.model_a, v.model_b, v.winner, v.turns, v.categories,"
    " (b.flags != '' OR EXISTS (SELECT 1 FROM feedback f WHERE f.battle_id = b.id AND f.kind = 'flag')) AS flagged"
    " FROM votes v JOIN battles b ON b.id = v.battle_id ORDER BY b.created, b.id"
)


@dataclass
class PreferenceReport:
    written: int = 0
    left_out: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items()))
        return f"wrote {self.written} preference pairs" + (f"; left out {reasons}" if reasons else "")


def _why_not(battle: sqlite3.Row) -> str | None:
    if battle["mode"] != "anony":
        return "named"
    if battle["winner"] not in DECISIVE:
        return "both bad" if battle["winner"] == "tie (bothbad)" else "ties"
    if battle["status"] == "failed":
        return "failed"
    if battle["flagged"]:
        return "flagged"
    return None


def _sides(conn: sqlite3.Connection, battle_id: str) -> tuple[list[str], dict[str, list[sqlite3.Row]]] | None:
    """The user turns and each side's answers, one per turn; None when an answer failed or is missing."""
    rows = conn.execute(
        "SELECT side, turn, role, content, error, finish_reason FROM messages WHERE battle_id = ? ORDER BY turn, id",
        (battle_id,),
    ).fetchall()
    prompts = [r["content"] for r in rows if r["side"] == "" and r["role"] == "user"]
    answers = {s: [r for r in rows if r["side"] == s and r["role"] == "assistant"] for s in "ab"}
    if not prompts or any(len(answers[s]) != len(prompts) for s in "ab"):
        return None
    for side in "ab":
        if any(r["error"] or r["finish_reason"] == "error" or not (r["content"] or "").strip() for r in answers[side]):
            return None
    return prompts, answers


def _pair(battle: sqlite3.Row, prompts: list[str], answers: dict[str, list[sqlite3.Row]]) -> dict[str, Any]:
    win, lose = ("a", "b") if battle["winner"] == "model_a" else ("b", "a")
    prompt: list[dict[str, str]] = []
    for turn, text in enumerate(prompts):
        prompt.append({"role": "user", "content": text})
        if turn < len(prompts) - 1:
            prompt.append({"role": "assistant", "content": answers[win][turn]["content"]})
    return {
        "prompt": prompt,
        "chosen": answers[win][-1]["content"],
        "rejected": answers[lose][-1]["content"],
        "metadata": {
            "battle_id": battle["id"],
            "model_chosen": battle[f"model_{win}"],
            "model_rejected": battle[f"model_{lose}"],
            "model_a": battle["model_a"],
            "model_b": battle["model_b"],
            "winner": battle["winner"],
            "turns": len(prompts),
            "tstamp": battle["created"],
            "categories": (battle["categories"] or "").split(),
        },
    }


def preference_rows(conn: sqlite3.Connection, report: PreferenceReport) -> Iterator[dict[str, Any]]:
    """The preference pairs in vote order; what is left out is counted in ``report``."""
    conn.row_factory = sqlite3.Row
    for battle in conn.execute(VOTES_SQL).fetchall():
        why = _why_not(battle)
        sides = _sides(conn, battle["id"]) if why is None else None
        if sides is None:  # no reason yet: an answer is missing or failed
            report.left_out[why or "failed"] += 1
            continue
        yield _pair(battle, *sides)


def export_preferences(conn: sqlite3.Connection, path: Path) -> PreferenceReport:
    """Write the pairs as JSONL (through a temporary file, so a failed export leaves no half file)."""
    report = PreferenceReport()
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in preference_rows(conn, report):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            report.written += 1
    tmp.replace(path)
    return report
