"""The database schema, as named ``sqlite_utils`` migrations applied in order at start-up."""

from __future__ import annotations

import secrets

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("arena")

STYLE_COLUMNS = ("sf_tokens", "sf_headers", "sf_lists", "sf_bold")


@migrations()
def m001_battles(db: Database) -> None:
    _create_battles(db)
    _create_messages(db)
    _create_votes(db)
    _create_pair_counts(db)
    db.table("feedback").create(
        {"id": int, "message_id": int, "battle_id": str, "kind": str, "created": float},
        pk="id",
    )


def _create_battles(db: Database) -> None:
    """One row per battle: its mode, the pair and how it was drawn, and its status."""
    db.table("battles").create(
        {
            "id": str,
            "mode": str,  # anony | named | direct
            "model_a": str,
            "model_b": str,  # "" for direct chat
            "pair_prob": float,  # probability with which the pair was drawn
            "created": float,
            "voter_hash": str,  # salted hash of the visitor's IP
            "status": str,  # open | voted | failed
            "turns": int,
            "first_prompt": str,
        },
        pk="id",
        not_null={"mode", "model_a", "status", "created"},
        defaults={"status": "open", "turns": 0, "model_b": "", "pair_prob": 1.0},
    )
    db.table("battles").create_index(["created"])


def _create_messages(db: Database) -> None:
    """Prompts and answers, each answer with its timings and style features."""
    db.table("messages").create(
        {
            "id": int,
            "battle_id": str,
            "side": str,  # a | b ("" for the visitor's prompt)
            "turn": int,
            "role": str,
            "content": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "ttft": float,
            "total_time": float,
            "finish_reason": str,
            "error": str,
            "created": float,
            **{c: int for c in STYLE_COLUMNS},
        },
        pk="id",
        foreign_keys=[("battle_id", "battles", "id")],
    )
    db.table("messages").create_index(["battle_id", "turn", "side"])


def _create_votes(db: Database) -> None:
    """One vote per battle, with its categories and both sides' summed style features."""
    db.table("votes").create(
        {
            "id": int,
            "battle_id": str,
            "mode": str,
            "model_a": str,
            "model_b": str,
            "winner": str,  # model_a | model_b | tie | tie (bothbad)
            "turns": int,
            "created": float,
            "voter_hash": str,
            "categories": str,  # space-separated category tags
            "pair_prob": float,
            **{f"a_{c}": int for c in STYLE_COLUMNS},
            **{f"b_{c}": int for c in STYLE_COLUMNS},
        },
        pk="id",
        foreign_keys=[("battle_id", "battles", "id")],
    )
    db.table("votes").create_index(["battle_id"], unique=True)


def _create_pair_counts(db: Database) -> None:
    """Running totals per (mode, category, ordered pair), updated in the vote's transaction."""
    # Running totals per (mode, category, ordered pair), updated in the vote's transaction so the
    # leaderboard never scans every vote. model_a < model_b; wins are from model_a's side.
    db.table("pair_counts").create(
        {
            "mode": str,
            "category": str,
            "model_a": str,
            "model_b": str,
            "wins_a": int,
            "wins_b": int,
            "ties": int,
            "bothbad": int,
        },
        pk=("mode", "category", "model_a", "model_b"),
        defaults={"wins_a": 0, "wins_b": 0, "ties": 0, "bothbad": 0},
    )


@migrations()
def m002_scores(db: Database) -> None:
    """Benchmark scores imported from CSV (MMLU, MT-bench...), one row per model and column."""
    db.table("scores").create({"model": str, "column": str, "value": float}, pk=("model", "column"))


@migrations()
def m003_registry(db: Database) -> None:
    """Runtime model changes made through the admin API; merged over the models file by id."""
    db.table("registry").create(
        {"id": str, "spec": str, "state": str, "removed": int, "updated": float},
        pk="id",
        defaults={"state": "active", "removed": 0},
    )


@migrations()
def m004_meta(db: Database) -> None:
    """Small facts about this database, such as the secret that salts voter hashes."""
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("meta").insert({"key": "secret", "value": secrets.token_hex(32)})


@migrations()
def m005_battle_meta(db: Database) -> None:
    """Extra fields of imported battles (FastChat's question_id, judge...), kept for export."""
    db.table("battles").add_column("meta", str)


@migrations()
def m006_language_codes(db: Database) -> None:
    """One language code system: "language:english" (imports) becomes "language:en", like live
    votes, in the votes' categories and in the pair counts (merged); unknown languages go."""
    from app.rating.language import language_code

    for vote_id, categories in db.execute(
        "SELECT id, categories FROM votes WHERE categories LIKE '%language:%'"
    ).fetchall():
        tags = []
        for tag in categories.split():
            code = language_code(tag.split(":", 1)[1]) if tag.startswith("language:") else ""
            if code is None:
                continue
            tags.append(f"language:{code}" if code else tag)
        db.execute("UPDATE votes SET categories = ? WHERE id = ?", (" ".join(dict.fromkeys(tags)), vote_id))
    for (old,) in db.execute("SELECT DISTINCT category FROM pair_counts WHERE category LIKE 'language:%'").fetchall():
        code = language_code(old.split(":", 1)[1])
        new = f"language:{code}" if code else None
        if new == old:
            continue
        if new is not None:
            db.execute(
                "INSERT INTO pair_counts (mode, category, model_a, model_b, wins_a, wins_b, ties, bothbad)"
                " SELECT mode, ?, model_a, model_b, wins_a, wins_b, ties, bothbad FROM pair_counts WHERE category = ?"
                " ON CONFLICT (mode, category, model_a, model_b) DO UPDATE SET wins_a = wins_a + excluded.wins_a,"
                " wins_b = wins_b + excluded.wins_b, ties = ties + excluded.ties, bothbad = bothbad + excluded.bothbad",
                (new, old),
            )
        db.execute("DELETE FROM pair_counts WHERE category = ?", (old,))


@migrations()
def m007_images_and_flags(db: Database) -> None:
    """Images of vision battles (files stored by content hash outside the database), flags that keep
    a battle's vote off the default board (moderation, identity leak), and the moderation log."""
    db.table("images").create(
        {"sha256": str, "mime": str, "width": int, "height": int, "bytes": int, "created": float}, pk="sha256"
    )
    db.table("battle_images").create(
        {"battle_id": str, "turn": int, "position": int, "sha256": str},
        pk=("battle_id", "turn", "position"),
        foreign_keys=[("battle_id", "battles", "id"), ("sha256", "images", "sha256")],
    )
    db.table("battles").add_column("flags", str, not_null_default="")  # space-separated: moderation identity
    db.table("votes").add_column("flags", str, not_null_default="")  # flagged votes are not in pair_counts
    db.table("moderation_log").create(
        {
            "id": int,
            "created": float,
            "source": str,  # battle | v1 | flag
            "checker": str,  # words | model | remote
            "reason": str,
            "excerpt": str,
            "battle_id": str,
            "voter_hash": str,
            "model": str,
        },
        pk="id",
    )


@migrations()
def m008_eval(db: Database) -> None:
    """Automatic evaluation: answers cached per (model, prompt, sampling), judge verdicts cached per
    (judge, suite, answers shown as A and B, template), and runs with their progress. The battles a
    judge decides go to ``battles``/``votes`` under mode ``judge``, never ``anony``."""
    db.table("eval_answers").create(
        {
            "key": str,  # sha256 of (model, prompt id, turns, sampling)
            "model": str,
            "prompt_id": str,
            "turns_hash": str,
            "sampling": str,  # JSON: temperature, top_p, max_tokens
            "answers": str,  # JSON list, one answer per turn
            "prompt_tokens": int,
            "completion_tokens": int,
            "seconds": float,
            "created": float,
        },
        pk="key",
    )
    db.table("eval_verdicts").create(
        {
            "key": str,  # sha256 of (kind, judge, suite, answer shown as A, answer shown as B, template hash)
            "kind": str,  # pairwise | single
            "judge": str,
            "suite": str,
            "prompt_id": str,
            "template_hash": str,
            "answer_a": str,  # eval_answers keys: shown as Assistant A (single: the graded answer)
            "answer_b": str,  # "" for single
            "model_a": str,
            "model_b": str,
            "verdict": str,  # A>>B | A>B | A=B | B>A | B>>A; "" when it did not parse (or single)
            "score": float,  # single: 1-10; NULL when it did not parse
            "raw": str,  # the judge's whole reply
            "battle_id": str,  # pairwise: the battle both orders decided
            "created": float,
        },
        pk="key",
    )
    db.table("eval_verdicts").create_index(["judge", "suite", "kind"])
    db.table("eval_runs").create(
        {
            "id": str,
            "kind": str,  # pairwise | single | tournament
            "suite": str,
            "judge": str,
            "models": str,  # JSON list
            "baseline": str,
            "status": str,  # running | done | failed | interrupted
            "done": int,
            "total": int,
            "result": str,  # JSON, once done
            "error": str,
            "created": float,
            "updated": float,
        },
        pk="id",
        defaults={"status": "running", "done": 0, "total": 0, "result": "", "error": "", "baseline": ""},
    )


def apply(path: str) -> None:
    db = Database(path)
    db.enable_wal()
    migrations.apply(db)
    db.close()


def stored_secret(path: str) -> str:
    """The database's own secret (created by its migrations)."""
    apply(path)
    db = Database(path)
    try:
        return str(db.table("meta").get("secret")["value"])
    finally:
        db.close()
