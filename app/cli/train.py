"""``arena train``: mounts the trainer's command line (``trainer/cli.py``).

Nothing heavy loads when the arena's CLI starts: torch, transformers, peft and trl load inside the
trainer when a ``train`` command runs, so the arena works without the ``train`` extra (and even
without the trainer package).
"""

from __future__ import annotations

import argparse

from app.cli.common import CommandError

HELP = "Fine-tune a model on chats or arena votes, and export it for the arena (needs the train extra)."
FLAGS: list[str] = []
MISSING = "the trainer is not installed; in an Arena checkout run: pip install -e '.[train]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from trainer.cli import add_arguments as add
    except ImportError:
        parser.add_argument("args", nargs=argparse.REMAINDER, help=MISSING)
        return
    add(parser)


def run(args: argparse.Namespace) -> int:
    try:
        from trainer.cli import run as train
    except ImportError:
        raise CommandError(MISSING) from None
    return train(args)
