"""``arena train sft|dpo|export|converter``: the trainer's command line.

``add_arguments(parser)`` fills the ``train`` subcommand's parser and ``run(args)`` runs it. Only
this module's own imports happen when the arena's CLI starts; torch and friends load inside
``run``, so the arena works without the ``train`` extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "Fine-tune a model on chats or arena votes, and export it for the arena (needs the train extra)."


def _training_flags(
    p: argparse.ArgumentParser, *, lr_help: str, batch: int, max_length: int, eval_fraction: float
) -> None:
    p.add_argument(
        "--base",
        required=True,
        help="A checkpoint folder, a .gguf file, an earlier run's --out, or bundled:gemma-3-270m.",
    )
    p.add_argument("--data", required=True, help="The data file (bundled:chat-seed is the seed set).")
    p.add_argument(
        "--out", required=True, type=Path, help="The run's output folder (new or empty; the same with --resume)."
    )
    p.add_argument("--lora", action="store_true", help="Train a LoRA adapter instead of all weights.")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=0, help="Optimizer steps (0: --epochs over the data).")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=0.0, help=lr_help)
    p.add_argument("--batch-size", type=int, default=batch)
    p.add_argument("--grad-accum", type=int, default=1, help="Batches per optimizer step.")
    p.add_argument(
        "--warmup", type=float, default=0.1, help="Warm-up: a fraction of the steps (< 1) or a number of steps."
    )
    p.add_argument("--schedule", default="cosine", help="Learning-rate schedule (cosine, linear, constant...).")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--max-length", type=int, default=max_length, help="Tokens per sample.")
    p.add_argument(
        "--eval-fraction", type=float, default=eval_fraction, help="Share of the data held out for eval loss."
    )
    p.add_argument("--eval-steps", type=int, default=0, help="Evaluate every N steps (0: before and after only).")
    p.add_argument("--save-steps", type=int, default=50, help="Checkpoint every N steps.")
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--log-steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--chat-format",
        choices=("gemma", "chatml", "llama-3", "template"),
        default=None,
        help="Turn format to train (default: the base's own template, or gemma for Gemma GGUFs).",
    )
    p.add_argument("--resume", action="store_true", help="Continue the run in --out from its last checkpoint.")
    p.add_argument("--stop-after", type=int, default=None, help="Stop after this step, leaving a checkpoint.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_command", required=True, metavar="{sft,dpo,export,demo,converter}")
    sft = sub.add_parser("sft", help="Supervised fine-tuning on conversations.")
    _training_flags(
        sft, lr_help="Learning rate (0: 2e-4 with --lora, 2e-5 full).", batch=4, max_length=512, eval_fraction=0.05
    )
    dpo = sub.add_parser("dpo", help="DPO on preference pairs (arena battles export --preferences FILE).")
    _training_flags(
        dpo, lr_help="Learning rate (0: 5e-5 with --lora, 5e-6 full).", batch=2, max_length=256, eval_fraction=0.0
    )
    dpo.add_argument("--beta", type=float, default=0.1, help="DPO's beta: how far from the reference model to move.")
    export = sub.add_parser("export", help="Write a GGUF and a model card for a finished run.")
    export.add_argument("run", type=Path, help="The run's output folder.")
    export.add_argument(
        "--gguf",
        choices=("lora", "q8_0", "f16", "q4_k_m", "none"),
        default="q8_0",
        help="lora: an adapter over the base GGUF; q4_k_m only if the fine-tune survives it.",
    )
    export.add_argument(
        "--name", default="", help="Model id in the printed models-file entry (default: the folder name)."
    )
    export.add_argument(
        "--tokenizer-pre", default="", help="GGUF pre-tokenizer name for a BPE tokenizer llama.cpp does not know."
    )
    sub.add_parser("converter", help="Fetch llama.cpp's converter from the pinned llama-cpp-python sdist (pip).")
    demo = sub.add_parser("demo", help="Build the chat-tuned bundled Gemma (LoRA on the seed set); resumable.")
    demo.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Output folder (default: $ARENA_DEMO_MODEL, else ~/.cache/arena/demo-model).",
    )
    demo.add_argument(
        "--check",
        action="store_true",
        help="Only say whether the built model is current (exit 0) or must be trained (exit 1); imports no torch.",
    )


def run(args: Any) -> int:
    from trainer.errors import TrainError

    try:
        return _dispatch(args)
    except TrainError as exc:
        print(f"arena train: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(
            f"arena train: {exc.name or exc} is missing: install the train extra (pip install -e '.[train]')",
            file=sys.stderr,
        )
        return 1


def _config_from(cls: Any, args: Any) -> Any:
    import dataclasses

    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def _dispatch(args: Any) -> int:
    command = args.train_command
    if command == "converter":
        from trainer.convert import fetch

        print(f"converter ready in {fetch()}")
        return 0
    if command == "demo" and args.check:
        from trainer.demo import check

        current, line = check(args.out)
        print(f"arena: {line}")
        return 0 if current else 1
    if command == "demo":
        from trainer.demo import build_demo

        result = build_demo(args.out)
        if result.get("models_entry"):
            print(result["models_entry"], end="")
        return 0 if result else 1
    if command == "export":
        from trainer.export import export_run

        result = export_run(args.run, args.gguf, name=args.name, tokenizer_pre=args.tokenizer_pre)
        print(f"wrote {result.get('gguf') or 'no GGUF'} and the model card in {args.run}\n")
        print(result["models_entry"], end="")
        return 0
    if command == "sft":
        from trainer.sft import SFTConfig, train_sft

        info = train_sft(_config_from(SFTConfig, args))
    else:
        from trainer.dpo import DPOConfig, train_dpo

        info = train_dpo(_config_from(DPOConfig, args))
    return 0 if info.get("status") == "done" or args.stop_after else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m trainer``: the same commands without the arena's CLI."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
