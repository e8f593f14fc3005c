"""The eval tables (``m008_eval``) and the judge's battles: keys, writes and reads.

Writes are functions of a ``sqlite3.Connection`` run by the store's one writer, like
``app.store.battles``'s. A pair's two verdicts, its battle, the answers as messages and the vote
are written in one transaction, under a battle id derived from what was judged, so a run that
is killed and started again never writes a battle twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.rating.style import style_features
from app.store.battles import Answer, NewBattle, add_answer, add_prompt, create_battle, record_vote

MODE = "judge"  # the battles' and votes' mode: the human board reads "anony" only


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def voter(judge: str) -> str:
    return f"judge:{judge}"


def categories(judge: str, suite: str) -> list[str]:
    return ["overall", f"judge:{judge}", f"suite:{suite}"]


@dataclass(frozen=True)
class Turn:
    """One answer to one turn, as generated."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class StoredAnswer:
    key: str
    model: str
    prompt_id: str
    turns: tuple[Turn, ...]

    @property
    def texts(self) -> list[str]:
        return [t.text for t in self.turns]


def answer_key(model: str, prompt_id: str, turns_hash: str, sampling: dict[str, Any]) -> str:
    return digest("answer", model, prompt_id, turns_hash, sampling)


def save_answer(answer: StoredAnswer, turns_hash: str, sampling: dict[str, Any]) -> Any:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO eval_answers (key, model, prompt_id, turns_hash, sampling, answers,"
            " prompt_tokens, completion_tokens, seconds, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                answer.key,
                answer.model,
                answer.prompt_id,
                turns_hash,
                json.dumps(sampling, sort_keys=True),
                json.dumps([t.__dict__ for t in answer.turns], ensure_ascii=False),
                sum(t.prompt_tokens for t in answer.turns),
                sum(t.completion_tokens for t in answer.turns),
                sum(t.seconds for t in answer.turns),
                time.time(),
            ),
        )

    return write


def answer_from_row(row: Any) -> StoredAnswer:
    turns = tuple(Turn(**t) for t in json.loads(row["answers"]))
    return StoredAnswer(row["key"], row["model"], row["prompt_id"], turns)


def verdict_key(
    kind: str,
    judge: str,
    suite: str,
    shown_a: str,
    shown_b: str,
    template_hash: str,
    settings: dict[str, Any],
    prompt_hash: str = "",
) -> str:
    """A judge reply's cache key: what it was shown, with which template, under which generation
    ``settings`` (a reply cut short at a small max_tokens is not reused at a larger one), and the
    prompt's ``prompt_hash`` (its turns, reference and category: an edited reference is judged anew)."""
    return digest("verdict", kind, judge, suite, shown_a, shown_b, template_hash, settings, prompt_hash)


@dataclass(frozen=True)
class Judged:
    """One judge reply about one order of one pair (or one graded answer)."""

    key: str
    shown_a: StoredAnswer
    shown_b: StoredAnswer | None
    raw: str
    verdict: str | None  # pairwise label, None when it did not parse
    score: float | None = None  # single grade, None when it did not parse


@dataclass(frozen=True)
class PairRecord:
    """Both orders of a pair on one prompt, as the run decided them."""

    judge: str
    suite: str
    prompt_id: str
    prompt_turns: tuple[str, ...]
    template_hash: str
    first: Judged  # X shown as A
    second: Judged  # Y shown as A
    winner: str | None  # model_a (X) | model_b (Y) | tie; None: a reply did not parse, no battle

    @property
    def battle_id(self) -> str:
        return "judge-" + digest(self.first.key, self.second.key)[:32]


def _insert_verdict(
    conn: sqlite3.Connection,
    kind: str,
    j: Judged,
    judge: str,
    suite: str,
    prompt_id: str,
    template_hash: str,
    battle_id: str,
) -> None:
    conn.execute(
        "INSERT INTO eval_verdicts (key, kind, judge, suite, prompt_id, template_hash, answer_a, answer_b,"
        " model_a, model_b, verdict, score, raw, battle_id, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            j.key,
            kind,
            judge,
            suite,
            prompt_id,
            template_hash,
            j.shown_a.key,
            j.shown_b.key if j.shown_b else "",
            j.shown_a.model,
            j.shown_b.model if j.shown_b else "",
            j.verdict or "",
            j.score,
            j.raw,
            battle_id,
            time.time(),
        ),
    )


def _answer_rows(battle_id: str, side: str, turn: int, t: Turn) -> Answer:
    style = style_features(t.text, t.completion_tokens).as_tuple()
    return Answer(
        battle_id,
        side,
        turn,
        t.text,
        t.prompt_tokens,
        t.completion_tokens,
        None,
        t.seconds,
        t.finish_reason or "stop",
        style=style,
    )


def save_pair(record: PairRecord) -> Any:
    """Both verdict rows and, when the pair has a winner, its battle, answers and vote: one
    transaction. Returns False when the pair was already stored (a resumed run)."""

    def write(conn: sqlite3.Connection) -> bool:
        if conn.execute("SELECT 1 FROM eval_verdicts WHERE key = ?", (record.first.key,)).fetchone():
            return False
        battle_id = record.battle_id if record.winner is not None else ""
        for j in (record.first, record.second):
            _insert_verdict(
                conn, "pairwise", j, record.judge, record.suite, record.prompt_id, record.template_hash, battle_id
            )
        if record.winner is not None:
            _write_battle(conn, record, battle_id)
        return True

    return write


def _write_battle(conn: sqlite3.Connection, record: PairRecord, battle_id: str) -> None:
    x, y = record.first.shown_a, record.first.shown_b
    assert y is not None
    create_battle(NewBattle(battle_id, MODE, x.model, y.model, 1.0, voter(record.judge), record.prompt_turns[0]))(conn)
    meta = {
        "suite": record.suite,
        "question_id": record.prompt_id,
        "judge": record.judge,
        "template_sha256": record.template_hash,
        "verdicts": [record.first.verdict, record.second.verdict],
    }
    conn.execute("UPDATE battles SET meta = ? WHERE id = ?", (json.dumps(meta), battle_id))
    for turn, question in enumerate(record.prompt_turns, start=1):
        add_prompt(battle_id, turn, question)(conn)
        add_answer(_answer_rows(battle_id, "a", turn, x.turns[turn - 1]))(conn)
        add_answer(_answer_rows(battle_id, "b", turn, y.turns[turn - 1]))(conn)
    assert record.winner is not None
    record_vote(
        battle_id, record.winner, voter(record.judge), categories(record.judge, record.suite), len(record.prompt_turns)
    )(conn)


def save_single(j: Judged, judge: str, suite: str, prompt_id: str, template_hash: str) -> Any:
    def write(conn: sqlite3.Connection) -> None:
        if not conn.execute("SELECT 1 FROM eval_verdicts WHERE key = ?", (j.key,)).fetchone():
            _insert_verdict(conn, "single", j, judge, suite, prompt_id, template_hash, "")

    return write


# -- runs -------------------------------------------------------------------------------------


def start_run(run_id: str, kind: str, suite: str, judge: str, models: Sequence[str], baseline: str = "") -> Any:
    def write(conn: sqlite3.Connection) -> None:
        now = time.time()
        conn.execute(
            "INSERT INTO eval_runs (id, kind, suite, judge, models, baseline, status, done, total, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, 'running', 0, 0, ?, ?) ON CONFLICT (id) DO UPDATE SET status = 'running',"
            " kind = excluded.kind, suite = excluded.suite, judge = excluded.judge, models = excluded.models,"
            " baseline = excluded.baseline, updated = excluded.updated",
            (run_id, kind, suite, judge, json.dumps(list(models)), baseline, now, now),
        )

    return write


def update_run(run_id: str, done: int, total: int) -> Any:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE eval_runs SET done = ?, total = ?, updated = ? WHERE id = ?", (done, total, time.time(), run_id)
        )

    return write


def finish_run(run_id: str, state: str, result: dict[str, Any] | None = None, error: str = "") -> Any:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE eval_runs SET status = ?, result = ?, error = ?, updated = ? WHERE id = ?",
            (state, json.dumps(result) if result is not None else "", error, time.time(), run_id),
        )

    return write
