"""Flags on battles: reasons a battle's vote stays off the default board (moderation, identity leak).

A flagged vote is kept in ``votes`` with its flags, and is not in ``pair_counts``: flagging a voted
battle takes its vote back out of the counts in the same transaction. A leaderboard option that
reads the votes table may count such votes again.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from app.errors import Invalid, NotFound
from app.store.battles import _count

REASONS = ("moderation", "identity")


def merged(flags: str, reason: str) -> str:
    """``flags`` with ``reason`` added once (space-separated, order kept)."""
    return " ".join(dict.fromkeys([*flags.split(), reason]))


def flag_battle(battle_id: str, reason: str) -> Any:
    """A store write: flag the battle; a vote it already has leaves the default board.

    Returns True when the battle's flags changed (flagging twice for one reason is a no-op)."""
    if reason not in REASONS:
        raise Invalid(f"reason must be one of {', '.join(REASONS)}", param="reason")

    def write(conn: sqlite3.Connection) -> bool:
        battle = conn.execute("SELECT flags FROM battles WHERE id = ?", (battle_id,)).fetchone()
        if battle is None:
            raise NotFound("No such battle.")
        flags = merged(battle["flags"] or "", reason)
        if flags == battle["flags"]:
            return False
        conn.execute("UPDATE battles SET flags = ? WHERE id = ?", (flags, battle_id))
        vote = conn.execute("SELECT * FROM votes WHERE battle_id = ?", (battle_id,)).fetchone()
        if vote is not None:
            if not vote["flags"]:
                _count(
                    conn, vote["mode"], vote["categories"].split(), vote["model_a"], vote["model_b"], vote["winner"], -1
                )
            conn.execute(
                "UPDATE votes SET flags = ? WHERE battle_id = ?", (merged(vote["flags"] or "", reason), battle_id)
            )
        return True

    return write
