"""Battles in FastChat's clean-battle format, both ways, and benchmark scores from CSV.

A row holds ``model_a``, ``model_b`` and ``winner``, and optionally ``anony``, ``language``,
``turn``, ``tstamp`` and ``conversation_a``/``conversation_b`` (lists of role/content messages).
Other fields are kept and written back on export, so a round trip loses nothing. On export, a
user message that carried images lists their SHA-256 hashes in ``images`` (the files themselves
are written by ``arena battles export --images DIR``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from app.rating.categories import battle_categories
from app.rating.style import style_features
from app.store.battles import WINNERS, _count
from app.store.migrations import STYLE_COLUMNS

KNOWN = {"model_a", "model_b", "winner", "anony", "language", "turn", "tstamp", "conversation_a", "conversation_b"}


@dataclass
class Report:
    """What an import did: rows taken, and each bad row's line number and reason."""

    imported: int = 0
    duplicates: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"imported {self.imported} battles, skipped {self.duplicates} already present, {len(self.bad)} bad rows"
        ]
        lines += [f"  line {n}: {why}" for n, why in self.bad[:50]]
        if len(self.bad) > 50:
            lines.append(f"  ... and {len(self.bad) - 50} more")
        return "\n".join(lines)


class TransferError(ValueError):
    pass


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) from a JSON array or JSONL file; unparsable lines yield an Exception.

    Decoded with msgspec (several times faster than ``json``); a JSONL file line by line."""
    data = path.read_bytes()
    if data.lstrip()[:1] == b"[":
        try:
            rows = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise TransferError(f"{path}: not valid JSON: {exc}") from None
        yield from enumerate(rows, start=1)
        return
    decode = msgspec.json.Decoder().decode
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, decode(line)
        except msgspec.DecodeError as exc:
            yield number, ValueError(f"not valid JSON ({exc})")


def check_row(row: Any) -> str | None:
    """Why a row is unusable, or None."""
    if isinstance(row, Exception):
        return str(row)
    if not isinstance(row, dict):
        return "not a JSON object"
    for key in ("model_a", "model_b", "winner"):
        if key not in row:
            return f"missing field {key!r}"
        if not isinstance(row[key], str) or not row[key]:
            return f"{key!r} must be a non-empty string"
    if row["winner"] not in WINNERS:
        return f"unknown winner {row['winner']!r} (expected one of {', '.join(WINNERS)})"
    if row["model_a"] == row["model_b"]:
        return f"a model against itself ({row['model_a']})"
    for key in ("conversation_a", "conversation_b"):
        if key in row and not _is_conversation(row[key]):
            return f"{key!r} must be a list of {{role, content}} messages"
    return None


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    )


def valid_rows(path: Path, report: Report) -> list[dict[str, Any]]:
    rows = []
    for number, row in read_rows(path):
        why = check_row(row)
        if why:
            report.bad.append((number, why))
        else:
            rows.append(row)
    if not rows:
        raise TransferError(f"{path}: no valid battle rows\n{report.summary()}")
    return rows


def _battle_id(row: dict[str, Any]) -> str:
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False)
    return "imp-" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _first_prompt(row: dict[str, Any]) -> str:
    for message in row.get("conversation_a") or []:
        if message["role"] == "user":
            return str(message["content"])
    return ""


def _prompt_tokens(row: dict[str, Any]) -> int | None:
    """The user tokens FastChat stores with a battle (``conv_metadata.sum_user_tokens``), if any."""
    meta = row.get("conv_metadata")
    tokens = meta.get("sum_user_tokens") if isinstance(meta, dict) else None
    return tokens if isinstance(tokens, int) and tokens >= 0 else None


def import_rows(conn: sqlite3.Connection, rows: list[dict[str, Any]], report: Report) -> None:
    """Insert battles, messages, votes and pair counts (one transaction, idempotent per row)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for row in rows:
            _import_one(conn, row, report)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _import_one(conn: sqlite3.Connection, row: dict[str, Any], report: Report) -> None:
    battle_id = _battle_id(row)
    if conn.execute("SELECT 1 FROM battles WHERE id = ?", (battle_id,)).fetchone():
        report.duplicates += 1
        return
    mode = "anony" if row.get("anony", True) else "named"
    created = float(row["tstamp"]) if isinstance(row.get("tstamp"), (int, float)) else time.time()
    turns = int(row["turn"]) if isinstance(row.get("turn"), int) and row["turn"] > 0 else 1
    prompt = _first_prompt(row)
    extra = {k: v for k, v in row.items() if k not in ("conversation_a", "conversation_b")}
    conn.execute(
        "INSERT INTO battles (id, mode, model_a, model_b, pair_prob, created, voter_hash, status, turns,"
        " first_prompt, meta) VALUES (?, ?, ?, ?, 1.0, ?, '', 'voted', ?, ?, ?)",
        (battle_id, mode, row["model_a"], row["model_b"], created, turns, prompt, json.dumps(extra)),
    )
    sums = _import_messages(conn, battle_id, row, created)
    language = row.get("language") if isinstance(row.get("language"), str) else None
    vision = any(m.get("images") for side in ("conversation_a", "conversation_b") for m in row.get(side) or [])
    categories = battle_categories(prompt, turns, row["winner"], _prompt_tokens(row), language=language, vision=vision)
    conn.execute(
        "INSERT INTO votes (battle_id, mode, model_a, model_b, winner, turns, created, voter_hash,"
        " categories, pair_prob, "
        + ", ".join(f"{s}_{c}" for s in "ab" for c in STYLE_COLUMNS)
        + ") VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, 1.0"
        + ", ?" * 8
        + ")",
        (
            battle_id,
            mode,
            row["model_a"],
            row["model_b"],
            row["winner"],
            turns,
            created,
            " ".join(categories),
            *sums["a"],
            *sums["b"],
        ),
    )
    _count(conn, mode, categories, row["model_a"], row["model_b"], row["winner"])
    report.imported += 1


def _import_messages(
    conn: sqlite3.Connection, battle_id: str, row: dict[str, Any], created: float
) -> dict[str, list[int]]:
    """Insert the row's conversations; returns each side's summed style features."""
    sums = {"a": [0] * 4, "b": [0] * 4}
    for side in ("a", "b"):
        turn = 0
        for message in row.get(f"conversation_{side}") or []:
            role, content = message["role"], message["content"]
            if role == "user":
                turn += 1
                if side == "a":
                    conn.execute(
                        "INSERT INTO messages (battle_id, side, turn, role, content, created)"
                        " VALUES (?, '', ?, 'user', ?, ?)",
                        (battle_id, turn, content, created),
                    )
                continue
            features = style_features(content, max(1, len(content) // 4)).as_tuple()
            sums[side] = [x + y for x, y in zip(sums[side], features, strict=True)]
            conn.execute(
                "INSERT INTO messages (battle_id, side, turn, role, content, finish_reason, created, "
                + ", ".join(STYLE_COLUMNS)
                + ") VALUES (?, ?, ?, ?, ?, 'stop', ?, ?, ?, ?, ?)",
                (battle_id, side, max(turn, 1), role, content, created, *features),
            )
    return sums


def _modes(include_named: bool) -> tuple[tuple[str, ...], str]:
    modes = ("anony", "named") if include_named else ("anony",)
    return modes, ",".join("?" * len(modes))


def flagged_votes(conn: sqlite3.Connection, *, include_named: bool = False) -> int:
    """How many votes ``export_rows`` leaves out because they are flagged."""
    modes, placeholders = _modes(include_named)
    query = f"SELECT COUNT(*) FROM votes WHERE mode IN ({placeholders}) AND flags != ''"
    return int(conn.execute(query, modes).fetchone()[0])


def export_rows(conn: sqlite3.Connection, *, include_named: bool = False) -> Iterator[dict[str, Any]]:
    """Voted battles as clean-battle rows (anonymous only unless ``include_named``); flagged votes
    (moderation, identity leak) are left out, as FastChat's clean-battle data leaves them out."""
    conn.row_factory = sqlite3.Row
    modes, placeholders = _modes(include_named)
    query = (
        "SELECT b.id, b.mode, b.created, b.meta, b.first_prompt, v.model_a, v.model_b, v.winner, v.turns,"
        f" v.categories FROM votes v JOIN battles b ON b.id = v.battle_id WHERE v.mode IN ({placeholders})"
        " AND v.flags = '' ORDER BY b.created, b.id"
    )
    for battle in conn.execute(query, modes).fetchall():
        messages = conn.execute(
            "SELECT side, turn, role, content FROM messages WHERE battle_id = ? ORDER BY turn, id", (battle["id"],)
        ).fetchall()
        images = _turn_images(conn, battle["id"])
        conversations: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
        for m in messages:
            message: dict[str, Any] = {"role": m["role"], "content": m["content"]}
            if m["side"] == "" and images.get(m["turn"]):
                message["images"] = images[m["turn"]]
            for side in ("a", "b") if m["side"] == "" else (m["side"],):
                conversations[side].append(dict(message))
        stored = json.loads(battle["meta"]) if battle["meta"] else {}
        language = next(
            (c.split(":", 1)[1] for c in (battle["categories"] or "").split() if c.startswith("language:")), None
        )
        row: dict[str, Any] = {
            "question_id": battle["id"],
            "model_a": battle["model_a"],
            "model_b": battle["model_b"],
            "winner": battle["winner"],
            "anony": battle["mode"] == "anony",
            "language": language,
            "turn": battle["turns"],
            "tstamp": battle["created"],
        }
        row.update(stored)  # an imported row's own fields win: a round trip loses nothing
        row = {k: v for k, v in row.items() if v is not None}
        if messages:
            row["conversation_a"], row["conversation_b"] = conversations["a"], conversations["b"]
        yield row


def _turn_images(conn: sqlite3.Connection, battle_id: str) -> dict[int, list[str]]:
    """turn -> the sha256 of each image its prompt carried, in order."""
    out: dict[int, list[str]] = {}
    rows = conn.execute(
        "SELECT turn, sha256 FROM battle_images WHERE battle_id = ? ORDER BY turn, position", (battle_id,)
    ).fetchall()
    for turn, sha in rows:
        out.setdefault(turn, []).append(sha)
    return out


def image_hashes(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every image hash the exported rows name, once each, in order."""
    seen: dict[str, None] = {}
    for row in rows:
        for message in row.get("conversation_a") or []:
            for sha in message.get("images") or []:
                seen.setdefault(sha, None)
    return list(seen)


def import_scores(conn: sqlite3.Connection, path: Path) -> tuple[int, list[tuple[int, str]]]:
    """Benchmark scores from a CSV with a ``model`` column; returns (values stored, bad cells)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "model" not in reader.fieldnames:
            raise TransferError(f"{path}: needs a header row with a 'model' column")
        columns = [c for c in reader.fieldnames if c != "model"]
        if not columns:
            raise TransferError(f"{path}: no score columns besides 'model'")
        stored, bad = 0, []
        values = []
        for number, row in enumerate(reader, start=2):
            model = (row.get("model") or "").strip()
            if not model:
                bad.append((number, "empty model name"))
                continue
            for column in columns:
                raw = (row.get(column) or "").strip()
                if not raw:
                    continue
                try:
                    value = float(raw)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    bad.append((number, f"{column}: {raw!r} is not a number"))
                    continue
                values.append((model, column, value))
    with conn:
        conn.executemany(
            "INSERT INTO scores (model, column, value) VALUES (?, ?, ?)"
            " ON CONFLICT (model, column) DO UPDATE SET value = excluded.value",
            values,
        )
        stored = len(values)
    return stored, bad
