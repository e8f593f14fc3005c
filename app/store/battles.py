"""Battles, messages, votes and pair counts: the write functions (run by the store's writer)
and the reads the arena needs."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import Conflict, Invalid, NotFound
from app.store.db import Store
from app.store.images import StoredImage, record_image
from app.store.migrations import STYLE_COLUMNS

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


@dataclass(frozen=True)
class NewBattle:
    id: str
    mode: str
    model_a: str
    model_b: str
    pair_prob: float
    voter_hash: str
    first_prompt: str


def create_battle(battle: NewBattle) -> Any:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO battles (id, mode, model_a, model_b, pair_prob, created, voter_hash,"
            " status, turns, first_prompt) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 0, ?)",
            (
                battle.id,
                battle.mode,
                battle.model_a,
                battle.model_b,
                battle.pair_prob,
                time.time(),
                battle.voter_hash,
                battle.first_prompt,
            ),
        )

    return write


def add_prompt(battle_id: str, turn: int, content: str, images: Sequence[tuple[StoredImage, int, int]] = ()) -> Any:
    """A turn's prompt, with the images it carries: (image, width, height), files already saved."""

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO messages (battle_id, side, turn, role, content, created) VALUES (?, '', ?, 'user', ?, ?)",
            (battle_id, turn, content, time.time()),
        )
        conn.execute("UPDATE battles SET turns = ? WHERE id = ?", (turn, battle_id))
        for position, (image, width, height) in enumerate(images):
            record_image(image, width, height)(conn)
            conn.execute(
                "INSERT INTO battle_images (battle_id, turn, position, sha256) VALUES (?, ?, ?, ?)",
                (battle_id, turn, position, image.sha256),
            )

    return write


@dataclass(frozen=True)
class Answer:
    battle_id: str
    side: str
    turn: int
    content: str
    prompt_tokens: int
    completion_tokens: int
    ttft: float | None
    total_time: float
    finish_reason: str
    error: str = ""
    style: tuple[int, ...] = field(kw_only=True)  # the answer's style features, in STYLE_COLUMNS order


def add_answer(answer: Answer) -> Any:
    """Store one side's answer with its style features; a failed answer flags the battle."""
    features = answer.style
    if len(features) != len(STYLE_COLUMNS):
        raise ValueError(f"an answer has {len(STYLE_COLUMNS)} style features, got {len(features)}")

    def write(conn: sqlite3.Connection) -> int:
        cur = conn.execute(
            "INSERT INTO messages (battle_id, side, turn, role, content, prompt_tokens,"
            " completion_tokens, ttft, total_time, finish_reason, error, created, "
            + ", ".join(STYLE_COLUMNS)
            + ") VALUES (?, ?, ?, 'assistant', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                answer.battle_id,
                answer.side,
                answer.turn,
                answer.content,
                answer.prompt_tokens,
                answer.completion_tokens,
                answer.ttft,
                answer.total_time,
                answer.finish_reason,
                answer.error,
                time.time(),
                *features,
            ),
        )
        if answer.error:
            conn.execute("UPDATE battles SET status = 'failed' WHERE id = ?", (answer.battle_id,))
        return int(cur.lastrowid or 0)

    return write


def drop_answers(battle_id: str, turn: int) -> Any:
    """Regenerate: forget the answers of a turn (only before the vote)."""

    def write(conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT status FROM battles WHERE id = ?", (battle_id,)).fetchone()
        if row is None or row["status"] == "voted":
            raise Conflict("This battle already has a vote.")
        conn.execute(
            "DELETE FROM messages WHERE battle_id = ? AND turn = ? AND side != ''",
            (battle_id, turn),
        )
        conn.execute("UPDATE battles SET status = 'open' WHERE id = ?", (battle_id,))

    return write


class Changed(Conflict):
    """The battle moved on since the caller read it: read it again and retry."""


# A battle's status -> why it takes no vote.
UNVOTABLE = {
    "voted": "This battle already has a vote.",
    "failed": "A model failed to answer in this battle, so it cannot be voted on.",
    "interrupted": "This battle was interrupted when the server restarted, so it cannot be voted on;"
    " please start a new one.",
}


def _check_votable(battle: sqlite3.Row | None, turns: int) -> None:
    if battle is None:
        raise NotFound("No such battle.")
    if battle["mode"] == "direct":
        raise Invalid("A direct chat takes feedback, not votes.")
    if battle["status"] in UNVOTABLE:
        raise Conflict(UNVOTABLE[battle["status"]])
    if battle["turns"] != turns:
        raise Changed("The battle changed meanwhile; reload it.")


def record_vote(battle_id: str, winner: str, voter_hash: str, categories: list[str], turns: int) -> Any:
    """Check the vote rules and record it, with the pair counts, in one transaction.

    ``categories`` were computed by the caller for the battle as it had ``turns`` turns; a battle
    that has moved on since is refused. Returns the battle's (model_a, model_b).
    """
    if winner not in WINNERS:
        raise Invalid(f"winner must be one of {', '.join(WINNERS)}")

    def write(conn: sqlite3.Connection) -> tuple[str, str]:
        battle = conn.execute("SELECT * FROM battles WHERE id = ?", (battle_id,)).fetchone()
        _check_votable(battle, turns)
        answers = conn.execute(
            "SELECT side, "
            + ", ".join(f"SUM({c}) AS {c}" for c in STYLE_COLUMNS)
            + ", COUNT(*) AS n FROM messages WHERE battle_id = ? AND side != ''"
            " AND role = 'assistant' GROUP BY side",
            (battle_id,),
        ).fetchall()
        per_side = {row["side"]: row for row in answers}
        if turns == 0 or any(side not in per_side or per_side[side]["n"] < turns for side in "ab"):
            raise Conflict("Both answers must be complete before voting.")
        style = [per_side[s][c] or 0 for s in "ab" for c in STYLE_COLUMNS]
        conn.execute(
            "INSERT INTO votes (battle_id, mode, model_a, model_b, winner, turns, created,"
            " voter_hash, categories, pair_prob, "
            + ", ".join(f"{s}_{c}" for s in "ab" for c in STYLE_COLUMNS)
            + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
            + ", ?" * len(style)
            + ")",
            (
                battle_id,
                battle["mode"],
                battle["model_a"],
                battle["model_b"],
                winner,
                turns,
                time.time(),
                voter_hash,
                " ".join(categories),
                battle["pair_prob"],
                *style,
            ),
        )
        conn.execute("UPDATE battles SET status = 'voted' WHERE id = ?", (battle_id,))
        if battle["flags"]:  # a flagged battle's vote is kept, but off the default board
            conn.execute("UPDATE votes SET flags = ? WHERE battle_id = ?", (battle["flags"], battle_id))
        else:
            _count(conn, battle["mode"], categories, battle["model_a"], battle["model_b"], winner)
        return battle["model_a"], battle["model_b"]

    return write


def _count(
    conn: sqlite3.Connection, mode: str, categories: list[str], a: str, b: str, winner: str, step: int = 1
) -> None:
    """Add one outcome to the running pair counts (pairs stored in name order); ``step=-1`` takes
    it back (a vote flagged afterwards)."""
    if a > b:
        a, b = b, a
        winner = {"model_a": "model_b", "model_b": "model_a"}.get(winner, winner)
    column = {"model_a": "wins_a", "model_b": "wins_b", "tie": "ties", "tie (bothbad)": "bothbad"}[winner]
    conn.executemany(
        f"INSERT INTO pair_counts (mode, category, model_a, model_b, {column}) VALUES (?, ?, ?, ?, ?)"
        f" ON CONFLICT (mode, category, model_a, model_b) DO UPDATE SET {column} = {column} + excluded.{column}",
        [(mode, category, a, b, step) for category in categories],
    )


def add_feedback(battle_id: str, message_id: int, kind: str) -> Any:
    def write(conn: sqlite3.Connection) -> None:
        row = conn.execute(
            "SELECT 1 FROM messages WHERE id = ? AND battle_id = ? AND role = 'assistant'",
            (message_id, battle_id),
        ).fetchone()
        if row is None:
            raise NotFound("No such answer.")
        conn.execute(
            "INSERT INTO feedback (message_id, battle_id, kind, created) VALUES (?, ?, ?, ?)",
            (message_id, battle_id, kind, time.time()),
        )

    return write


# -- reads ------------------------------------------------------------------------------------


async def get_battle(store: Store, battle_id: str) -> dict[str, Any] | None:
    row = await store.fetchone("SELECT * FROM battles WHERE id = ?", (battle_id,))
    return dict(row) if row is not None else None


async def get_messages(store: Store, battle_id: str) -> list[dict[str, Any]]:
    rows = await store.fetchall("SELECT * FROM messages WHERE battle_id = ? ORDER BY turn, side, id", (battle_id,))
    return [dict(r) for r in rows]


async def get_vote(store: Store, battle_id: str) -> dict[str, Any] | None:
    row = await store.fetchone("SELECT * FROM votes WHERE battle_id = ?", (battle_id,))
    return dict(row) if row is not None else None


async def first_prompt_tokens(store: Store, battle_id: str) -> int | None:
    """The first prompt's length in tokens, as the answering models counted it (the smaller
    side's count, stored with each answer); None before any answer stored one."""
    row = await store.fetchone(
        "SELECT MIN(prompt_tokens) FROM messages WHERE battle_id = ? AND turn = 1 AND role = 'assistant'"
        " AND prompt_tokens > 0",
        (battle_id,),
    )
    return int(row[0]) if row is not None and row[0] is not None else None


async def get_battle_images(store: Store, battle_id: str) -> dict[int, tuple[str, ...]]:
    """A battle's images: turn number -> the sha256 of each, in order."""
    rows = await store.fetchall(
        "SELECT turn, sha256 FROM battle_images WHERE battle_id = ? ORDER BY turn, position", (battle_id,)
    )
    out: dict[int, tuple[str, ...]] = {}
    for row in rows:
        out[row["turn"]] = (*out.get(row["turn"], ()), row["sha256"])
    return out


async def image_owner(store: Store, battle_id: str, sha256: str) -> str | None:
    """The voter hash of the battle that holds this image, or None when it holds no such image
    ("" for an imported battle: nobody's)."""
    row = await store.fetchone(
        "SELECT b.voter_hash FROM battle_images i JOIN battles b ON b.id = i.battle_id"
        " WHERE i.battle_id = ? AND i.sha256 = ? LIMIT 1",
        (battle_id, sha256),
    )
    return str(row[0] or "") if row is not None else None
