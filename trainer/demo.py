"""``make demo-model`` (``arena train demo``): the bundled Gemma 3 270M base, taught to chat on the
seed set with LoRA, exported as a LoRA adapter GGUF over the bundled file.

Idempotent and resumable: a finished export is left alone, an interrupted run resumes from its
last checkpoint. The settings are fixed so that every install builds the same model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.bases import cache_dir
from trainer.runinfo import INFO

MODEL_ID = "gemma-3-270m-chat"
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


def default_out() -> Path:
    return cache_dir() / "demo-model"


def build_demo(out: Path | None = None) -> dict[str, Any]:
    """Train (or resume) and export; returns ``export.json``."""
    from trainer.export import EXPORT_INFO, export_run
    from trainer.sft import SFTConfig, train_sft

    out = out or default_out()
    if (out / EXPORT_INFO).is_file():
        print(f"the demo model is already built in {out}", flush=True)
        return dict(json.loads((out / EXPORT_INFO).read_text()))
    info_file = out / INFO
    status = json.loads(info_file.read_text()).get("status") if info_file.is_file() else None
    if status != "done":
        info = train_sft(SFTConfig(out=out, resume=info_file.is_file(), **SETTINGS))
        if info.get("status") != "done":
            return {}
    return export_run(out, "lora", name=MODEL_ID)
