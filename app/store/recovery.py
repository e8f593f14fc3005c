"""What a restart finds: battles whose answers were being generated when the server died.

Generation state lives in memory, so a battle caught mid-turn by a crash can never finish. At
start-up such battles are marked ``interrupted``: they cannot be voted on, and their page says so.
A battle whose answers were all stored is untouched and can still be voted on.
"""

from __future__ import annotations

import sqlite3

INTERRUPTED = "interrupted"

_UNFINISHED = """
SELECT b.id FROM battles AS b
WHERE b.status = 'open' AND b.turns > 0 AND (
    SELECT COUNT(DISTINCT m.side) FROM messages AS m
    WHERE m.battle_id = b.id AND m.turn = b.turns AND m.side != ''
) < (CASE WHEN b.mode = 'direct' THEN 1 ELSE 2 END)
"""


def interrupt_unfinished(conn: sqlite3.Connection) -> int:
    """Mark every battle left mid-turn as interrupted; returns how many."""
    ids = [row[0] for row in conn.execute(_UNFINISHED)]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(f"UPDATE battles SET status = '{INTERRUPTED}' WHERE id = ?", [(i,) for i in ids])
    conn.execute("COMMIT")
    return len(ids)
