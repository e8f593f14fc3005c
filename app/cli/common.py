"""Pieces every ``arena`` subcommand uses: settings from flags, errors, tables."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from app.settings import LIST_FIELDS, Settings, load_settings


class CommandError(Exception):
    """A command that could not do what was asked; the message says why."""


def add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    for name in names:
        field = Settings.model_fields[name]
        flag = "--" + name.replace("_", "-")
        # argparse %-formats help texts: a literal % (as in "85% of memory") must be doubled
        help_text = f"{field.description} [env ARENA_{name.upper()}]".replace("%", "%%")
        if name in LIST_FIELDS:
            parser.add_argument(flag, dest=name, action="append", help=help_text)
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_text)


def settings_from(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    cli = {name: getattr(args, name, None) for name in names}
    return load_settings(cli, os.environ, getattr(args, "config", None))


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
