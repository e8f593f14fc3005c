"""The ``arena`` command line. Flags and their help come from :mod:`app.settings`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.settings import LIST_FIELDS, Settings, SettingsError, load_settings


def _add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    for name in names:
        field = Settings.model_fields[name]
        flag = "--" + name.replace("-", "_").replace("_", "-")
        help_text = f"{field.description} [env ARENA_{name.upper()}]"
        if name in LIST_FIELDS:
            parser.add_argument(flag, dest=name, action="append", help=help_text)
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_text)


def _settings(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    cli = {name: getattr(args, name, None) for name in names}
    return load_settings(cli, os.environ, args.config)


SERVE_FLAGS = list(Settings.model_fields)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.server import create_app

    settings = _settings(args, SERVE_FLAGS)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    print(f"Arena serving on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List configured models, their engine and whether each is loaded (asks a running server
    when one answers on the configured address, else reads the models file)."""
    from app.modelspec import load_models

    settings = _settings(args, ["models", "host", "port", "api_key"])
    loaded = _live_models(settings)
    rows = [("ID", "NAME", "ENGINE", "STATE")]
    for spec in load_models(settings.models):
        live = loaded.get(spec.id)
        state = live["state"] if live else "not loaded (server not running)"
        engine = live["engine"] if live else spec.engine
        rows.append((spec.id, spec.display_name, engine, state))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _live_models(settings: Settings) -> dict[str, dict[str, str]]:
    import httpx

    try:
        r = httpx.get(f"http://{settings.host}:{settings.port}/ready", timeout=2.0)
        data = r.json()["models"]
    except Exception:  # noqa: BLE001 - no server running is a normal case
        return {}
    return {mid: {"state": state, "engine": ""} for mid, state in data.items()}


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], list[str], str]] = {
    "serve": (cmd_serve, SERVE_FLAGS, "Start the server."),
    "models": (cmd_models, ["models", "host", "port", "api_key"], "List the configured models."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arena", description="A self-hosted LLM arena.")
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file [env ARENA_CONFIG]")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, flags, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", type=Path, default=None, help="TOML settings file [env ARENA_CONFIG]")
        _add_setting_flags(p, flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: Any = build_parser().parse_args(argv)
    func = COMMANDS[args.command][0]
    try:
        return func(args)
    except SettingsError as exc:
        print(f"arena: invalid settings: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
