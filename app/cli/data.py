"""``arena leaderboard``, ``arena battles import|export`` and ``arena scores import``."""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from app.arena.leaderboard import COUNTS_SQL, VOTES_SQL, counts_from_rows, fitted_json, votes_from_rows, votes_per_model
from app.cli import moderation as cli_moderation
from app.cli.common import CommandError, print_table, settings_from
from app.errors import Invalid
from app.rating.board import BoardData, Query, check_anchor, fit_board, make_query
from app.rating.categories import BattleMeta, category_predicate
from app.rating.cells import aggregate_battles
from app.rating.options import Options, VoteRows
from app.store import migrations
from app.store.battle_file import Columns, FullRow, LeanRow, Problems, read_battles
from app.store.transfer import (
    Report,
    TransferError,
    export_rows,
    flagged_votes,
    image_hashes,
    import_rows,
    import_scores,
    valid_rows,
)

DB_FLAGS = ["db", "models", "image_dir"]


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


def _lean_cells(path: Path, problems: Problems) -> BoardData:
    """The overall board's input: names and outcomes only, aggregated with numpy."""
    columns = Columns()
    for rows in read_battles(path, LeanRow, problems):
        columns.add([r for r in rows if r.anony])
    a, b, winner = columns.arrays()
    return BoardData(cells=aggregate_battles(a, b, winner, models=columns.names))


def _file_votes(path: Path, category: str, problems: Problems) -> BoardData:
    """A category's (or the options') input: the file's anonymous votes, one by one."""
    wanted = category_predicate(category)
    kept: list[FullRow] = []
    for rows in read_battles(path, FullRow, problems):
        for r in rows:
            if r.anony and wanted(BattleMeta(r.winner, r.language, r.turn, r.first_prompt())):
                kept.append(r)
    votes = VoteRows(
        [r.model_a for r in kept],
        [r.model_b for r in kept],
        [r.winner for r in kept],
        [1.0] * len(kept),
        [r.judge or "" for r in kept],
        [r.first_prompt() for r in kept],
    )
    return BoardData(votes=votes)


def _from_file(args: argparse.Namespace, query: Query) -> tuple[BoardData, dict[str, int]]:
    if query.style_control:
        raise CommandError("--style-control needs --db (style features are stored with votes)")
    if query.options.inverse_probability:
        raise CommandError("--inverse-probability needs --db (pair probabilities are stored with votes)")
    problems = Problems()
    if query.category == "overall" and not query.options.active:
        data = _lean_cells(args.battles, problems)
    else:
        data = _file_votes(args.battles, query.category, problems)
    if problems.bad:
        print(Report(bad=problems.bad).summary(), file=sys.stderr)
    return data, data.votes_per_model()


def _from_db(args: argparse.Namespace, query: Query, settings: Any) -> tuple[BoardData, dict[str, int]]:
    with _connect(settings) as conn:
        overall = counts_from_rows(conn.execute(COUNTS_SQL, ("anony", "overall")).fetchall())
        counts = counts_from_rows(conn.execute(COUNTS_SQL, ("anony", query.category)).fetchall())
        data = BoardData(counts)
        if query.needs_votes:
            rows = conn.execute(VOTES_SQL, ("anony", f"% {query.category} %")).fetchall()
            data = BoardData(counts, votes_from_rows(rows))
    return data, votes_per_model(overall)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    settings = settings_from(args, DB_FLAGS)
    try:
        query = make_query(
            category=args.category,
            style_control=args.style_control,
            ci=args.ci,
            anchor=args.anchor,
            rounds=args.bootstrap_rounds,
            options=Options(args.inverse_probability, max(0, args.max_per_prompt), args.filter_voters),
            provisional_votes=settings.provisional_votes,
        )
        data, votes = _from_file(args, query) if args.battles is not None else _from_db(args, query, settings)
        check_anchor(query, set(votes))
        fitted = fit_board(data, query)
    except (Invalid, TransferError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if query.options.active:
        used = fitted.options
        print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in used.items()), file=sys.stderr)
    out = fitted_json(fitted, query, metadata=_metadata(settings), scores={}, overall_votes=votes)
    _print_board(out, args.format)
    return 0


def _metadata(settings: Any) -> dict[str, dict[str, Any]]:
    from app.registry.spec import load_models

    return {s.id: {"name": s.display_name, **s.metadata.model_dump()} for s in load_models(settings.models)}


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
    parser.add_argument("action", choices=("import", "export", "flag"))
    parser.add_argument("file", type=Path, nargs="?", help="The battle file (import, export), or the battle ID (flag).")
    parser.add_argument("--all", action="store_true", help="export: named (side-by-side) battles too.")
    parser.add_argument(
        "--preferences", type=Path, metavar="FILE", help="export: {prompt, chosen, rejected} JSONL from decisive votes."
    )
    parser.add_argument(
        "--images", type=Path, metavar="DIR", help="export: write the battles' image files into DIR (SHA256.png ...)."
    )
    cli_moderation.add_flag_arguments(parser)


def cmd_battles(args: argparse.Namespace) -> int:
    settings = settings_from(args, DB_FLAGS)
    if args.action == "export" and args.preferences is not None:
        from app.store.preferences import export_preferences

        with _connect(settings) as conn:
            print(f"{export_preferences(conn, args.preferences).summary()} to {args.preferences}")
        return 0
    if args.file is None:
        raise CommandError(f"battles {args.action}: give a FILE (export also takes --preferences FILE)")
    if args.action == "flag":
        print(cli_moderation.flag(str(args.file), args.reason, args.note, settings))
        return 0
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
        flagged = flagged_votes(conn, include_named=args.all)
    with args.file.open("w", encoding="utf-8") as f:
        if args.file.suffix == ".jsonl":
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            json.dump(rows, f, ensure_ascii=False, indent=1)
    print(f"exported {len(rows)} battles to {args.file}" + (f"; left out {flagged} flagged" if flagged else ""))
    if args.images is not None:
        return _export_images(settings, image_hashes(rows), args.images)
    return 0


def _export_images(settings: Any, hashes: list[str], folder: Path) -> int:
    """Copy the images the export names from the image store into ``folder`` as SHA256.EXT,
    each checked against its hash; a missing one is reported and fails the command."""
    from app.errors import DomainError
    from app.media.images import FORMATS, ImageLimits, ImageStore

    store = ImageStore(settings.image_dir or Path(f"{settings.db}.images"), ImageLimits())
    folder.mkdir(parents=True, exist_ok=True)
    missing = []
    for sha in hashes:
        try:
            image = store.load(sha)
        except DomainError:
            missing.append(sha)
            continue
        (folder / f"{sha}.{FORMATS[image.mime][1]}").write_bytes(image.data)
    print(f"wrote {len(hashes) - len(missing)} images to {folder}")
    if missing:
        print(f"missing from the image store ({store.folder}): {', '.join(missing)}", file=sys.stderr)
        return 1
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
