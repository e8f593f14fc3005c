"""What a training run records about itself: ``training.json`` in its output folder, which the
export's model card and a later run (DPO on top of SFT, or a resume) read back."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from trainer.errors import TrainError

INFO = "training.json"
CHECKPOINTS = "checkpoints"
FINAL = "hf"  # the final full checkpoint (LoRA merged into it)
ADAPTER = "adapter"  # the LoRA adapter alone, when trained with LoRA
PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "llama-cpp-python")


def git_revision() -> str:
    """The project's commit, with ``-dirty`` when the working tree has changes; '' outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return rev + ("-dirty" if dirty else "")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def prepare_out(out: Path, *, resume: bool, settings: dict[str, Any]) -> dict[str, Any] | None:
    """Check the output folder: empty (or new) for a fresh run; for ``resume`` the same settings.

    Returns the earlier run's info when resuming.
    """
    info_file = out / INFO
    if resume:
        if not info_file.is_file():
            raise TrainError(f"{out}: nothing to resume (no {INFO})")
        earlier = json.loads(info_file.read_text())
        if earlier.get("settings") != settings:
            changed = sorted(
                k
                for k in set(settings) | set(earlier.get("settings", {}))
                if settings.get(k) != earlier.get("settings", {}).get(k)
            )
            raise TrainError(f"{out}: cannot resume with different settings ({', '.join(changed)})")
        return dict(earlier)
    if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()):  # a caller's marker may wait
        raise TrainError(f"{out} is not empty; pass --resume to continue its run, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return None


def write_info(out: Path, info: dict[str, Any]) -> None:
    tmp = out / (INFO + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, out / INFO)


def read_info(out: Path) -> dict[str, Any]:
    info_file = out / INFO
    if not info_file.is_file():
        raise TrainError(f"{out}: not a training run (no {INFO})")
    return dict(json.loads(info_file.read_text()))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def last_checkpoint(out: Path) -> Path | None:
    folder = out / CHECKPOINTS
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()] if folder.is_dir() else []
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None
