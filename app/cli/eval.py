"""``arena eval pairwise|single|tournament``: an LLM judge over a prompt suite, in this process.

Like ``arena leaderboard``, it opens the models file and the database from the settings itself;
no server is needed. Answers and verdicts are cached in the database, so the same command run
again after an interruption continues where it stopped. Progress goes to stderr.

To add an action, write ``cmd_NAME(args, settings) -> int`` and put it in :data:`ACTIONS`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.cli.common import CommandError, print_table, settings_from
from app.errors import DomainError
from app.eval.suites import Suite, SuiteError, load_suite
from app.eval.templates import TemplateError
from app.registry.spec import ModelsFileError
from app.settings import Settings

FLAGS = [
    "db",
    "parallel",
    "max_queue",
    "threads",
    "model_dir",
    "check_engines",
    "remote_env_prefix",
    "suites_dir",
    "judge_templates",
]
HELP = "Judge models with a model: pairwise against a baseline, single 1-10 grades, or a tournament."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=list(ACTIONS), help="What to run.")
    parser.add_argument("--suite", default="demo", help="A suite: a .jsonl file or a name (arena suites list).")
    parser.add_argument("--models", default="", help="Comma-separated model ids to evaluate.")
    parser.add_argument(
        "--models-file", type=Path, default=None, help="Models TOML file (the --models setting of other commands)."
    )
    parser.add_argument("--judge", default="", help="The judging model's id (any registered model).")
    parser.add_argument("--baseline", default="", help="pairwise: the model every other is compared with.")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="Eval generations at once per model (0: --parallel)."
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="Cap on each answer (default: each model's).")
    parser.add_argument("--judge-max-tokens", type=int, default=1024, help="Cap on each judge reply.")
    parser.add_argument("--run-id", default=None, help="Name the run (its row in eval_runs).")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
    parser.add_argument("--limit", type=int, default=0, help="agreement: replay at most N battles, drawn at random.")
    parser.add_argument("--seed", type=int, default=0, help="agreement: seeds the --limit draw and the bootstrap.")
    parser.add_argument("--rounds", type=int, default=1000, help="agreement: bootstrap rounds of the intervals.")


class ProgressBar:
    """``[#####.....] 12/40  3.1/s  ETA 0:09`` on stderr, redrawn at most 5 times a second."""

    def __init__(self, label: str, stream: Any = None, width: int = 24) -> None:
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.started = time.monotonic()
        self._drawn = 0.0
        self._first: tuple[float, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = (now, done - 1)  # cached work finishes at once: rate counts from here
        if now - self._drawn < 0.2 and done < total:
            return
        self._drawn = now
        self.stream.write("\r" + self.line(done, total, now))
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()

    def line(self, done: int, total: int, now: float) -> str:
        filled = int(self.width * done / total) if total else self.width
        since, base = self._first or (self.started, 0)
        elapsed = max(now - since, 1e-9)
        rate = max(done - base, 0) / elapsed if elapsed > 0.05 else 0.0
        eta = (total - done) / rate if rate > 0 else math.inf
        eta_text = "--:--" if math.isinf(eta) else f"{int(eta // 60)}:{int(eta % 60):02d}"
        return (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}  {rate:.1f}/s  ETA {eta_text} "
        )


def _ids(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def _common(args: argparse.Namespace, settings: Settings) -> tuple[Suite, list[str], str]:
    if not args.judge:
        raise CommandError(f"eval {args.action} needs --judge MODEL")
    models = _ids(args.models)
    if not models:
        raise CommandError(f"eval {args.action} needs --models A,B,...")
    return load_suite(args.suite, settings.suites_dir), models, args.judge


async def _run(args: argparse.Namespace, settings: Settings, ids: list[str], play: Callable[..., Any]) -> Any:
    from app.eval.context import open_context

    options = {
        "templates": settings.judge_templates,
        "concurrency": max(0, args.concurrency),
        "judge_max_tokens": args.judge_max_tokens,
        "max_tokens": args.max_tokens,
    }
    async with open_context(settings, ids, **options) as ctx:
        progress = None if args.no_progress else ProgressBar(args.action)
        return await play(ctx, progress)


def _execute(args: argparse.Namespace, ids: list[str], play: Callable[..., Any]) -> Any:
    settings = eval_settings(args)
    try:
        return asyncio.run(_run(args, settings, ids, play))
    except KeyboardInterrupt:
        raise CommandError("interrupted; the same command continues where this one stopped") from None
    except (DomainError, SuiteError, TemplateError, ModelsFileError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None


def _tally_line(result: Any) -> str:
    t = result.tally
    return (
        f"judge {result.judge}, suite {result.suite}: {t.pairs} pairs decided ({t.ties} ties, {t.inconsistent} "
        f"inconsistent orders counted as ties), {t.parse_failures} judge replies did not parse, {t.judge_failures} "
        f"judge failures, {t.answer_failures} answer failures; cached: {t.answers_cached} answers, "
        f"{t.verdicts_cached} verdicts; run {result.run_id}"
    )


def cmd_pairwise(args: argparse.Namespace, settings: Settings) -> int:
    from app.eval.runs import run_pairwise

    suite, models, judge = _common(args, settings)
    if not args.baseline:
        raise CommandError("eval pairwise needs --baseline MODEL")
    ids = [*models, args.baseline, judge]
    result = _execute(
        args, ids, lambda ctx, p: run_pairwise(ctx, suite, models, judge, args.baseline, p, run_id=args.run_id)
    )
    if args.format == "json":
        print(json.dumps(result.as_json(), indent=2))
        return 0
    table = [("MODEL", f"WIN RATE VS {args.baseline}", "95% CI", "W/T/L", "PAIRS")]
    for model, row in sorted(result.win_rates.items(), key=lambda kv: -kv[1]["win_rate"]):
        table.append(
            (
                model,
                f"{row['win_rate']:.3f}",
                f"{row['ci'][0]:.3f}-{row['ci'][1]:.3f}",
                f"{row['wins']}/{row['ties']}/{row['losses']}",
                str(row["n"]),
            )
        )
    print(_tally_line(result))
    print_table(table)
    return 0


def cmd_single(args: argparse.Namespace, settings: Settings) -> int:
    from app.eval.runs import run_single

    suite, models, judge = _common(args, settings)
    result = _execute(
        args, [*models, judge], lambda ctx, p: run_single(ctx, suite, models, judge, p, run_id=args.run_id)
    )
    if args.format == "json":
        print(json.dumps(result.as_json(), indent=2))
        return 0
    table = [("MODEL", "SCORE (1-10)", "95% CI", "GRADED", "NOT PARSED")]
    for model, row in sorted(result.scores.items(), key=lambda kv: -(kv[1]["mean"] or 0)):
        mean, (low, high) = row["mean"], row["ci"]
        table.append(
            (
                model,
                "-" if mean is None else f"{mean:.2f}",
                "-" if low is None else f"{low:.2f}-{high:.2f}",
                str(row["n"]),
                str(row["parse_failures"]),
            )
        )
    t = result.tally
    print(
        f"judge {judge}, suite {suite.name}: {t.judge_replies + t.verdicts_cached} grades "
        f"({t.verdicts_cached} cached), {t.parse_failures} did not parse, {t.judge_failures} judge failures, "
        f"{t.answer_failures} answer failures; run {result.run_id}"
    )
    print_table(table)
    return 0


def cmd_tournament(args: argparse.Namespace, settings: Settings) -> int:
    from app.eval.runs import run_tournament

    suite, models, judge = _common(args, settings)
    if len(set(models)) < 2:
        raise CommandError("eval tournament needs at least two --models")
    result = _execute(
        args, [*models, judge], lambda ctx, p: run_tournament(ctx, suite, models, judge, p, run_id=args.run_id)
    )
    if args.format == "json":
        print(json.dumps(result.as_json(), indent=2))
        return 0
    table = [("RANK (UB)", "MODEL", "SCORE", "95% CI", "BATTLES")]
    for row in result.board:
        table.append(
            (
                str(row["rank_ub"]),
                row["model"],
                f"{row['rating']:.1f}",
                f"+{row['ci_upper'] - row['rating']:.1f}/-{row['rating'] - row['ci_lower']:.1f}",
                str(row["votes"]),
            )
        )
    print(_tally_line(result))
    if result.board:
        print_table(table)
    else:
        print("no pair was decided: no board")
    return 0


def _figure_row(name: str, figure: dict[str, Any], unit: str) -> tuple[str, str, str, str]:
    value, low, high = figure["value"], figure["lower"], figure["upper"]
    interval = "-" if low is None else f"{low:.3f}-{high:.3f}"
    return (name, "-" if value is None else f"{value:.3f}", interval, f"{figure['n']} {unit}")


def cmd_agreement(args: argparse.Namespace, settings: Settings) -> int:
    """Replay the stored human battles to the judge; agreement, kappa and rank correlations (app.eval.replay)."""
    from app.eval.replay import figures, human_battles, replay

    if not args.judge:
        raise CommandError("eval agreement needs --judge MODEL")

    async def play(ctx: Any, progress: Any) -> dict[str, Any]:
        battles = await human_battles(ctx.store, max(0, args.limit), args.seed)
        return figures(await replay(ctx, args.judge, battles, progress), rounds=max(1, args.rounds), seed=args.seed)

    report = _execute(args, [args.judge], play)
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    t = report["tally"]
    print(
        f"judge {args.judge}: {t['decided']} of {t['battles']} human battles decided in both orders "
        f"({t['inconsistent']} inconsistent, counted as ties), {t['parse_failures']} replies did not parse, "
        f"{t['judge_failures']} judge failures; {t['cached']} replies cached"
        + (f"; {t['skipped_vision']} vision battles skipped (the judge reads text only)" if t["skipped_vision"] else "")
    )
    print_table(
        [
            ("FIGURE", "VALUE", "95% CI", "OVER"),
            _figure_row("agreement, ties left out", report["agreement_without_ties"], "votes"),
            _figure_row("agreement, with ties", report["agreement_with_ties"], "votes"),
            _figure_row("Cohen's kappa", report["cohen_kappa"], "votes"),
            _figure_row("Spearman (boards)", report["rank_spearman"], "models"),
            _figure_row("Kendall tau-b (boards)", report["rank_kendall"], "models"),
        ]
    )
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "pairwise": cmd_pairwise,
    "single": cmd_single,
    "tournament": cmd_tournament,
    "agreement": cmd_agreement,
}


def eval_settings(args: argparse.Namespace) -> Settings:
    """The settings: ``--models`` names the models to evaluate here, so the file is ``--models-file``."""
    settings = settings_from(args, FLAGS)
    return settings.model_copy(update={"models": args.models_file}) if args.models_file else settings


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.action](args, eval_settings(args))
