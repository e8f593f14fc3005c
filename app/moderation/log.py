"""Store writes of moderation: a row of ``moderation_log`` per blocked prompt, and flagging a
battle afterwards (its vote leaves the default board; the flag is logged too)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from app.moderation.checks import excerpt
from app.store.flags import flag_battle

INSERT = (
    "INSERT INTO moderation_log (created, source, checker, reason, excerpt, battle_id, voter_hash, model)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class Origin:
    """Where a checked prompt came from, for the log: ``battle`` or ``v1`` (``flag`` for flags)."""

    source: str
    battle_id: str = ""
    voter_hash: str = ""
    model: str = ""


def log_block(origin: Origin, checker: str, reason: str, text: str) -> Any:
    """A store write: one ``moderation_log`` row; returns its id."""

    def write(conn: sqlite3.Connection) -> int:
        row = (time.time(), origin.source, checker, reason[:500], text, origin.battle_id, origin.voter_hash)
        cursor = conn.execute(INSERT, (*row, origin.model[:200]))
        return int(cursor.lastrowid or 0)

    return write


def flag_afterwards(battle_id: str, reason: str, by: str, note: str = "") -> Any:
    """A store write: :func:`~app.store.flags.flag_battle`, logged (``source = flag``, ``checker = by``)
    with the battle's first prompt as the excerpt. Returns True when the flags changed. Like every
    store write it expects rows as :class:`sqlite3.Row`."""
    flag = flag_battle(battle_id, reason)  # an unknown reason is refused here, before the write

    def write(conn: sqlite3.Connection) -> bool:
        changed = bool(flag(conn))
        if changed:
            first = conn.execute(
                "SELECT content FROM messages WHERE battle_id = ? AND side = '' ORDER BY turn LIMIT 1", (battle_id,)
            ).fetchone()
            battle = conn.execute("SELECT model_a, model_b FROM battles WHERE id = ?", (battle_id,)).fetchone()
            models = " ".join(m for m in (battle["model_a"], battle["model_b"]) if m)
            text = excerpt([first["content"]] if first else [], [])
            why = f"{reason}: {note}" if note else reason
            conn.execute(INSERT, (time.time(), "flag", by, why[:500], text, battle_id, "", models))
        return changed

    return write
