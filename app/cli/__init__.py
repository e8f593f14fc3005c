"""The ``arena`` command line. Flags and their help come from :mod:`app.settings`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.cli import data as cli_data
from app.cli import doctor as cli_doctor
from app.cli import eval as cli_eval
from app.cli import models as cli_models
from app.cli import suites as cli_suites
from app.cli import train as cli_train
from app.cli.common import CommandError, add_setting_flags, settings_from
from app.settings import Settings, SettingsError

SERVE_FLAGS = list(Settings.model_fields)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves: X-Forwarded-For/-Proto are believed only from --trusted-proxies, and
    not at all without them (uvicorn's own default trusts 127.0.0.1); slow headers and bodies
    time out, and one address holds a bounded number of connections (:mod:`app.cli.connections`)."""
    from app.cli.connections import ConnectionGuard, guarded_protocol

    guard = ConnectionGuard(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        per_client=settings.max_connections_per_client,
        exempt=settings.trusted_proxies,
    )
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
        "http": guarded_protocol(guard),
    }


def cmd_serve(args: argparse.Namespace) -> int:
    import faulthandler

    import uvicorn

    from app.errors import DomainError
    from app.registry.spec import ModelsFileError
    from app.server import create_app
    from app.store.db import StoreError, check_writable

    faulthandler.enable()  # a crash in native code (llama.cpp) still prints where and why
    settings = settings_from(args, SERVE_FLAGS)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings)  # checks settings and the models file; writes nothing
    except (ModelsFileError, DomainError, ValueError) as exc:
        raise SettingsError(str(exc)) from None
    try:
        check_writable(str(settings.db))  # a read-only or full database: one line, before serving
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    print(f"Arena serving on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(app, **uvicorn_options(settings))
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], list[str], str]] = {
    "serve": (cmd_serve, SERVE_FLAGS, "Start the server."),
    "models": (cli_models.run, cli_models.FLAGS, "List models, or add, remove, pause or resume one."),
    "leaderboard": (cli_data.cmd_leaderboard, cli_data.DB_FLAGS, "Print the leaderboard."),
    "battles": (cli_data.cmd_battles, cli_data.DB_FLAGS, "Import or export battles (FastChat format), or flag one."),
    "scores": (cli_data.cmd_scores, cli_data.DB_FLAGS, "Import benchmark scores from a CSV file."),
    "doctor": (cli_doctor.run, cli_doctor.FLAGS, "Check the llama.cpp engine build on this CPU and the models."),
    "train": (cli_train.run, cli_train.FLAGS, cli_train.HELP),
    "suites": (cli_suites.run, cli_suites.FLAGS, cli_suites.HELP),
    "eval": (cli_eval.run, cli_eval.FLAGS, cli_eval.HELP),
}

EXTRA_ARGUMENTS = {
    "models": cli_models.add_arguments,
    "leaderboard": cli_data.add_leaderboard_arguments,
    "battles": cli_data.add_battles_arguments,
    "scores": cli_data.add_scores_arguments,
    "train": cli_train.add_arguments,
    "suites": cli_suites.add_arguments,
    "eval": cli_eval.add_arguments,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arena", description="A self-hosted LLM arena.")
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file [env ARENA_CONFIG]")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, flags, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", type=Path, default=None, help="TOML settings file [env ARENA_CONFIG]")
        add_setting_flags(p, flags)
        if name in EXTRA_ARGUMENTS:
            EXTRA_ARGUMENTS[name](p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: Any = build_parser().parse_args(argv)
    func = COMMANDS[args.command][0]
    try:
        return func(args)
    except SettingsError as exc:
        print(f"arena: invalid settings: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"arena: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
