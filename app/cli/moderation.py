"""``arena battles flag ID``: flag a battle afterwards, so its vote leaves the default board."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from app.cli.common import CommandError
from app.errors import DomainError
from app.moderation.log import flag_afterwards
from app.store import migrations


def add_flag_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason", choices=("moderation", "identity"), default="moderation", help="flag: why (default moderation)."
    )
    parser.add_argument("--note", default="", help="flag: free text for the moderation log.")


def flag(battle_id: str, reason: str, note: str, settings: Any) -> str:
    """Flag one battle in the database (one transaction, as the server's writer would); the summary line.

    A running server sees the change on its next leaderboard refresh (a short cache lifetime)."""
    try:
        write = flag_afterwards(battle_id, reason, "cli", note)
        migrations.apply(str(settings.db))
        conn = sqlite3.connect(settings.db, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                changed = write(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()
    except DomainError as exc:
        raise CommandError(f"battles flag {battle_id}: {exc.message}") from None
    return f"flagged battle {battle_id} ({reason})" if changed else f"battle {battle_id} was already flagged ({reason})"
