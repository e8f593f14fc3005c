"""``arena leaderboard``, ``arena battles import|export`` and ``arena scores import``."""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from app.arena.leaderboard import (
    COUNTS_SQL,
    STYLE_SQL,
    VOTES_SQL,
    LeaderboardError,
    StyleRows,
    board_json,
    compute,
    counts_from_rows,
    empty_json,
    parse_anchor,
    style_from_rows,
    votes_from_rows,
)
from app.cli.common import CommandError, print_table, settings_from
from app.rating.categories import BattleMeta, categories_for
from app.rating.options import Counts, Options, VoteRows, apply_options
from app.registry.spec import load_models
from app.store import migrations
from app.store.transfer import Report, TransferError, export_rows, import_rows, import_scores, valid_rows

DB_FLAGS = ["db", "models"]


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--battles", type=Path, help="A clean-battle file (JSON or JSONL) instead of --db.")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.add_argument("--anchor", help="Pin a model's score: MODEL=SCORE (e.g. mixtral-8x7b-instruct-v0.1=1114).")
    parser.add_argument("--ci", choices=("sandwich", "bootstrap"), default="sandwich")
    parser.add_argument("--bootstrap-rounds", type=int, default=100)
    parser.add_argument("--category", default="overall")
    parser.add_argument("--style-control", action="store_true", help="Fit with style covariates.")
    parser.add_argument(
        "--inverse-probability", action="store_true", help="Weight votes by 1 / P(pair drawn) (--db only)."
    )
    parser.add_argument("--max-per-prompt", type=int, default=0, help="Keep at most N votes per identical prompt.")
    parser.add_argument("--filter-voters", action="store_true", help="Drop anomalous voters (Chatbot Arena paper).")


def _connect(settings: Any) -> sqlite3.Connection:
    migrations.apply(str(settings.db))
    conn = sqlite3.connect(settings.db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _counts_from_db(conn: sqlite3.Connection, category: str) -> Counts:
    return counts_from_rows(conn.execute(COUNTS_SQL, ("anony", category)).fetchall())


def _style_from_db(conn: sqlite3.Connection, category: str) -> StyleRows:
    return style_from_rows(conn.execute(STYLE_SQL, ("anony", f"% {category} %")).fetchall())


def _votes_from_file(path: Path, category: str, report: Report) -> VoteRows:
    """The file's anonymous battles in ``category`` (the voter is FastChat's ``judge`` field)."""
    kept = []
    for row in valid_rows(path, report):
        if not row.get("anony", True):
            continue
        prompt = next((m["content"] for m in row.get("conversation_a") or [] if m["role"] == "user"), "")
        meta = BattleMeta(row["winner"], row.get("language"), int(row.get("turn") or 1), prompt)
        if category in categories_for(meta):
            kept.append((row["model_a"], row["model_b"], row["winner"], 1.0, str(row.get("judge") or ""), prompt))
    return votes_from_rows(kept)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    settings = settings_from(args, DB_FLAGS)
    report = Report()
    try:
        anchor = parse_anchor(args.anchor)
        if args.battles is not None:
            if args.style_control:
                raise CommandError("--style-control needs --db (style features are stored with votes)")
            options = Options(False, max(0, args.max_per_prompt), args.filter_voters)
            counts, _used = apply_options(_votes_from_file(args.battles, args.category, report), options)
            style = None
        else:
            with _connect(settings) as conn:
                counts = _counts_from_db(conn, args.category)
                style = _style_from_db(conn, args.category) if args.style_control else None
                options = Options(args.inverse_probability, max(0, args.max_per_prompt), args.filter_voters)
                if options.active:
                    rows = votes_from_rows(conn.execute(VOTES_SQL, ("anony", f"% {args.category} %")).fetchall())
                    counts, used = apply_options(rows, options)
                    print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in used.items()), file=sys.stderr)
        board = compute(counts, anchor=anchor, ci=args.ci, rounds=args.bootstrap_rounds, style=style)
    except (LeaderboardError, TransferError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if report.bad:
        print(report.summary(), file=sys.stderr)
    metadata = {s.id: {"name": s.display_name, **s.metadata.model_dump()} for s in load_models(settings.models)}
    out = (
        empty_json(args.category, args.style_control, args.ci, time.time())
        if board is None
        else board_json(
            board,
            total_votes=counts.total,
            category=args.category,
            style_control=args.style_control,
            metadata=metadata,
            scores={},
            updated=time.time(),
        )
    )
    _print_board(out, args.format)
    return 0


def _print_board(out: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(out, indent=2))
        return
    header = ("rank_ub", "model", "rating", "ci_lower", "ci_upper", "votes")
    rows = [tuple(str(m[h]) for h in header) for m in out["models"]]
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(rows)
        return
    table = [("RANK (UB)", "MODEL", "SCORE", "95% CI", "VOTES")]
    for m in out["models"]:
        table.append(
            (
                str(m["rank_ub"]),
                m["model"],
                f"{m['rating']:.1f}",
                f"+{m['ci_plus']:.1f}/-{m['ci_minus']:.1f}",
                str(m["votes"]),
            )
        )
    print(f"{out['total_votes']} votes, category {out['category']}, {out['ci']} intervals")
    print_table(table)


def add_battles_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("import", "export"))
    parser.add_argument("file", type=Path, nargs="?")
    parser.add_argument("--all", action="store_true", help="export: named (side-by-side) battles too.")
    parser.add_argument(
        "--preferences", type=Path, metavar="FILE", help="export: {prompt, chosen, rejected} JSONL from decisive votes."
    )


def cmd_battles(args: argparse.Namespace) -> int:
    settings = settings_from(args, DB_FLAGS)
    if args.action == "export" and args.preferences is not None:
        from app.store.preferences import export_preferences

        with _connect(settings) as conn:
            print(f"{export_preferences(conn, args.preferences).summary()} to {args.preferences}")
        return 0
    if args.file is None:
        raise CommandError(f"battles {args.action}: give a FILE (export also takes --preferences FILE)")
    if args.action == "import":
        report = Report()
        try:
            rows = valid_rows(args.file, report)
        except (TransferError, OSError) as exc:
            raise CommandError(str(exc)) from None
        with _connect(settings) as conn:
            import_rows(conn, rows, report)
        print(report.summary())
        return 0
    with _connect(settings) as conn:
        rows = list(export_rows(conn, include_named=args.all))
    with args.file.open("w", encoding="utf-8") as f:
        if args.file.suffix == ".jsonl":
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            json.dump(rows, f, ensure_ascii=False, indent=1)
    print(f"exported {len(rows)} battles to {args.file}")
    return 0


def add_scores_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("import",))
    parser.add_argument("file", type=Path)


def cmd_scores(args: argparse.Namespace) -> int:
    settings = settings_from(args, DB_FLAGS)
    try:
        with _connect(settings) as conn:
            stored, bad = import_scores(conn, args.file)
    except (TransferError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print(f"stored {stored} scores, {len(bad)} bad cells")
    for number, why in bad[:50]:
        print(f"  line {number}: {why}")
    return 0 if stored else 1
