"""``arena suites list|show NAME|import FILE``: the prompt suites ``arena eval`` reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import CommandError, print_table, settings_from
from app.eval.suites import SuiteError, available, import_suite, load_suite

FLAGS = ["suites_dir"]
HELP = "List, show or import prompt suites (JSONL; MT-bench's question.jsonl reads as is)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "show", "import"), default="list")
    parser.add_argument("target", nargs="?", help="show: a suite name or file; import: the JSONL file to import.")
    parser.add_argument("--name", default=None, help="import: the name to give the suite (default: the file's stem).")


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, FLAGS)
    folder = settings.suites_dir
    try:
        if args.action == "list":
            rows = [("NAME", "PROMPTS", "CATEGORIES", "SOURCE")]
            for name, source in available(folder).items():
                suite = load_suite(source, folder)
                cats = sorted({p.category for p in suite.prompts if p.category})
                rows.append((name, str(len(suite.prompts)), ",".join(cats) or "-", source))
            print_table(rows)
            return 0
        if not args.target:
            raise CommandError(f"suites {args.action} needs a {'suite' if args.action == 'show' else 'FILE'}")
        if args.action == "import":
            suite = import_suite(Path(args.target), folder, args.name)
            print(f"imported {len(suite.prompts)} prompts as suite {suite.name!r} ({suite.source})")
            return 0
        suite = load_suite(args.target, folder)
    except (SuiteError, OSError) as exc:
        raise CommandError(str(exc)) from None
    table = [("ID", "CATEGORY", "TURNS", "REFERENCE", "FIRST TURN")]
    for p in suite.prompts:
        table.append((p.id, p.category or "-", str(len(p.turns)), "yes" if p.reference else "-", _short(p.turns[0])))
    print(f"suite {suite.name}: {len(suite.prompts)} prompts ({suite.source})")
    print_table(table)
    return 0
