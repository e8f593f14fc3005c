"""Admin sessions ended by a logout: each one's nonce, kept in ``meta`` until the session would
have expired anyway, so a replayed cookie stays refused after a restart too."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from app.store.db import Store

PREFIX = "admin-logout:"  # meta keys: PREFIX + nonce -> the session's expiry (unix seconds)


def end_session(nonce: str, expires: int) -> Any:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (PREFIX + nonce, str(expires)))

    return write


def _forget_expired(now: float) -> Any:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "DELETE FROM meta WHERE substr(key, 1, ?) = ? AND CAST(value AS INTEGER) <= ?",
            (len(PREFIX), PREFIX, int(now)),
        )

    return write


async def ended_sessions(store: Store, now: float | None = None) -> set[str]:
    """The nonces of ended sessions that have not expired yet (the expired ones are dropped)."""
    now = time.time() if now is None else now
    await store.write(_forget_expired(now))
    rows = await store.fetchall("SELECT key FROM meta WHERE substr(key, 1, ?) = ?", (len(PREFIX), PREFIX))
    return {str(row["key"])[len(PREFIX) :] for row in rows}
