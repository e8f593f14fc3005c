"""``arena train ...`` and ``arena battles export --preferences`` through the arena's CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.cli import main
from tests.trainer.conftest import need
from tests.trainer.test_dpo import make_votes


async def test_battles_export_preferences(arena, tmp_path: Path, capsys) -> None:
    await make_votes(arena, tmp_path / "arena.db")
    out = tmp_path / "prefs.jsonl"
    assert main(["battles", "export", "--preferences", str(out), "--db", str(tmp_path / "arena.db")]) == 0
    assert len(out.read_text().splitlines()) == 4
    assert "wrote 4 preference pairs; left out 1 both bad, 1 flagged, 1 named, 1 ties" in capsys.readouterr().out
    assert main(["battles", "export", "--db", str(tmp_path / "arena.db")]) == 1
    assert "give a FILE" in capsys.readouterr().err


def test_train_sft_then_bad_export_through_the_cli(tiny_base: Path, tiny_data: Path, tmp_path: Path, capsys) -> None:
    need("peft")
    out = tmp_path / "run"
    args = ["train", "sft", "--base", str(tiny_base), "--data", str(tiny_data), "--out", str(out)]
    assert main([*args, "--steps", "2", "--chat-format", "gemma", "--log-steps", "1", "--eval-fraction", "0.25"]) == 0
    info = json.loads((out / "training.json").read_text())
    assert info["status"] == "done" and info["settings"]["steps"] == 2 and "eval_loss" in info
    assert main([*args, "--steps", "2"]) == 1  # the folder is used
    assert "is not empty; pass --resume" in capsys.readouterr().err
    assert main(["train", "export", str(out), "--gguf", "lora"]) == 1
    assert "needs a run trained with --lora" in capsys.readouterr().err


def test_the_arena_cli_does_not_import_torch() -> None:
    code = "import sys, app.cli; print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
