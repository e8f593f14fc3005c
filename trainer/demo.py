"""``arena train demo`` (``make demo-model``, and ``make serve`` on a fresh clone): the bundled
Gemma 3 270M base, taught to chat on the seed set with LoRA, exported as a LoRA adapter GGUF over
the bundled file.

Built once: the folder holds ``.demo-key.json``, a hash of what the model is made of (the seed
data, the base weights, the trainer's version and the settings). The same key reuses the export;
another key trains again from scratch. An interrupted run with the same key resumes from its last
checkpoint. ``python -m trainer demo --check`` answers whether the cached model is current without
importing torch, so ``make serve`` checks in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from trainer.bases import BUNDLED, BUNDLED_PREFIX, bundled_gguf, cache_dir, file_sha256
from trainer.errors import TrainError
from trainer.runinfo import INFO

MODEL_ID = "gemma-3-270m-chat"
# The trainer's version for the demo model: bump it when a change to the trainer (training, the
# chat template, the export) changes what `arena train demo` builds, so every cache rebuilds.
DEMO_VERSION = 1
SETTINGS: dict[str, Any] = {
    "base": "bundled:gemma-3-270m",
    "data": "bundled:chat-seed",
    "lora": True,
    "lora_r": 16,
    "lora_alpha": 32,
    "lr": 5e-4,
    "epochs": 2.0,
    "batch_size": 8,
    "max_length": 256,
    "eval_fraction": 0.05,
    "save_steps": 10,
    "log_steps": 2,
    "warmup": 0.1,
}
KEY_FILE = ".demo-key.json"  # written before training starts; a dot, so a fresh run ignores it
EXPORT_INFO = "export.json"  # trainer.export's name, without importing it (it is not cheap)
MINUTES_ON_TWO_CORES = 4  # from nothing on 2 idle cores (issue 22's VM: 3.5 min of training)


def default_out() -> Path:
    """``$ARENA_DEMO_MODEL`` when set (the folder the arena serves it from), else the cache."""
    return Path(os.environ.get("ARENA_DEMO_MODEL") or cache_dir() / "demo-model")


def base_sha256(spec: str) -> str:
    """The base GGUF's sha256; a bundled package states it, so nothing is hashed or assembled."""
    name = spec.removeprefix(BUNDLED_PREFIX)
    if spec.startswith(BUNDLED_PREFIX) and name in BUNDLED:
        stated = getattr(__import__(BUNDLED[name]), "EXPECTED_SHA256", "")
        if isinstance(stated, str) and len(stated) == 64:
            return stated
    return file_sha256(bundled_gguf(name) if spec.startswith(BUNDLED_PREFIX) else Path(spec))


def llama_cpp_version() -> str:
    try:
        return metadata.version("llama-cpp-python")  # its converter writes the adapter, its engine reads it
    except metadata.PackageNotFoundError:
        return ""


def demo_key(settings: dict[str, Any] | None = None, version: int | None = None) -> dict[str, Any]:
    """What the demo model is made of, and ``key``: a hash of all of it."""
    from trainer.data import data_sha256

    settings = dict(SETTINGS if settings is None else settings)
    parts = {
        "data_sha256": data_sha256(settings["data"]),
        "base_sha256": base_sha256(settings["base"]),
        "trainer_version": DEMO_VERSION if version is None else version,
        "llama_cpp_python": llama_cpp_version(),
        "settings": settings,
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return {"key": digest[:16], **parts}


def stored_key(out: Path) -> str:
    try:
        return str(json.loads((out / KEY_FILE).read_text()).get("key", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def check(out: Path | None = None) -> tuple[bool, str]:
    """(the cached demo model is built and current, a line saying so or why not)."""
    out = out or default_out()
    key = demo_key()["key"]
    if not (out / EXPORT_INFO).is_file():
        return False, f"no demo chat model in {out} yet"
    if stored_key(out) != key:
        return False, f"the demo chat model in {out} was built from other data, base or trainer (key {key})"
    return True, f"the demo chat model is built and current in {out} (key {key})"


def _start_over(out: Path) -> None:
    """Empty a demo folder built with another key; a folder that is not one is left alone."""
    if not out.exists() or not any(out.iterdir()):
        return
    if not ((out / KEY_FILE).is_file() or (out / INFO).is_file() or (out / EXPORT_INFO).is_file()):
        raise TrainError(f"{out} is not empty and holds no demo model; choose another --out or ARENA_DEMO_MODEL")
    print(f"arena: the demo chat model's data, base or trainer changed: rebuilding {out}", flush=True)
    shutil.rmtree(out)


def build_demo(out: Path | None = None) -> dict[str, Any]:
    """Train (or resume) and export, once per key; returns ``export.json``."""
    out = out or default_out()
    key = demo_key()
    if (out / EXPORT_INFO).is_file() and stored_key(out) == key["key"]:
        print(f"arena: the demo chat model is already built in {out} (key {key['key']})", flush=True)
        return dict(json.loads((out / EXPORT_INFO).read_text()))
    if stored_key(out) != key["key"]:
        _start_over(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / KEY_FILE).write_text(json.dumps(key, indent=2) + "\n")  # this run (and its resume) is for this key
    from trainer.convert import fetch
    from trainer.export import export_run
    from trainer.sft import SFTConfig, train_sft

    fetch(quiet=True)  # the converter first: a failed download shows before minutes of training
    info_file = out / INFO
    status = json.loads(info_file.read_text()).get("status") if info_file.is_file() else None
    started = time.monotonic()
    if status != "done":
        cores = os.cpu_count() or 1
        print(
            f"arena: training the demo chat model once (about {MINUTES_ON_TWO_CORES} minutes on 2 idle cores, "
            f"longer on a busy machine; this one has {cores}), into {out}; ARENA_SKIP_DEMO=1 skips it",
            file=sys.stderr,
            flush=True,
        )
        info = train_sft(SFTConfig(out=out, resume=info_file.is_file(), **SETTINGS))
        if info.get("status") != "done":
            return {}
    result = export_run(out, "lora", name=MODEL_ID)
    seconds = time.monotonic() - started
    print(f"arena: the demo chat model is ready ({seconds / 60:.1f} min), cached in {out}", file=sys.stderr)
    return result
