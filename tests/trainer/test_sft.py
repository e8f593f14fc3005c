"""SFT on the tiny model: full and LoRA lower the loss, a resumed run equals a straight one, the
progress line reports loss, tokens/s and ETA."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.trainer.conftest import need
from trainer.errors import TrainError

need("peft")

from trainer.progress import Progress  # noqa: E402
from trainer.sft import SFTConfig, train_sft  # noqa: E402


def config(base: Path, data: Path, out: Path, **overrides: object) -> SFTConfig:
    settings: dict[str, object] = {
        "steps": 24,
        "lr": 3e-3,
        "batch_size": 4,
        "eval_fraction": 0.0,
        "log_steps": 4,
        "save_steps": 100,
        "warmup": 2,
        "chat_format": "gemma",
        **overrides,
    }
    return SFTConfig(base=str(base), data=str(data), out=out, **settings)  # type: ignore[arg-type]


def weights(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_full_sft_lowers_the_loss_and_writes_a_checkpoint(tiny_base: Path, tiny_data: Path, tmp_path: Path) -> None:
    stream = io.StringIO()
    info = train_sft(config(tiny_base, tiny_data, tmp_path / "run"), progress=Progress(stream, bar=False))
    assert info["status"] == "done" and info["steps"] == 24
    assert info["train_loss_last"] < 0.5 * info["train_loss_first"]
    assert (tmp_path / "run" / "hf" / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "run" / "training.json").read_text())
    assert saved["data"]["sha256"] and saved["method"] == "full" and saved["sessions"][0]["tokens_per_second"] > 0
    # the trained model ends its turns with Gemma's marker
    generation = json.loads((tmp_path / "run" / "hf" / "generation_config.json").read_text())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "hf")
    eos = generation["eos_token_id"]
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") == (eos[0] if isinstance(eos, list) else eos)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("step ")]
    assert lines and all(part in lines[-1] for part in ("loss ", "tok/s", "s/step", "ETA "))


def test_lora_sft_lowers_the_loss_and_keeps_the_adapter(tiny_base: Path, tiny_data: Path, tmp_path: Path) -> None:
    info = train_sft(
        config(tiny_base, tiny_data, tmp_path / "run", lora=True, lora_r=8, lr=1e-2), progress=Progress(io.StringIO())
    )
    assert info["method"] == "lora"
    assert info["train_loss_last"] < 0.7 * info["train_loss_first"]
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    base, merged = weights(tiny_base), weights(tmp_path / "run" / "hf")
    changed = [k for k in base if not bool((base[k] == merged[k]).all())]  # type: ignore[union-attr]
    assert changed and all("proj" in k for k in changed)  # LoRA touched the linear layers only


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_resume_equals_straight_through(tiny_base: Path, tiny_data: Path, tmp_path: Path, lora: bool) -> None:
    common = {"steps": 8, "save_steps": 4, "batch_size": 2, "grad_accum": 2, "eval_fraction": 0.25, "lora": lora}
    straight = train_sft(config(tiny_base, tiny_data, tmp_path / "a", **common), progress=Progress(io.StringIO()))
    first = train_sft(
        config(tiny_base, tiny_data, tmp_path / "b", stop_after=4, **common), progress=Progress(io.StringIO())
    )
    assert first["status"].startswith("stopped at step 4") and not (tmp_path / "b" / "hf").exists()
    resumed = train_sft(
        config(tiny_base, tiny_data, tmp_path / "b", resume=True, **common), progress=Progress(io.StringIO())
    )
    assert resumed["status"] == "done" and resumed["sessions"][1]["resumed_from"] == "checkpoint-4"
    a, b = weights(tmp_path / "a" / "hf"), weights(tmp_path / "b" / "hf")
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)  # type: ignore[union-attr]
    losses = {e["step"]: e["loss"] for e in straight["log"] if "loss" in e}
    assert losses == {e["step"]: e["loss"] for e in resumed["log"] if "loss" in e}
    assert straight["eval_loss"] == resumed["eval_loss"] < straight["eval_loss_before"]


def test_resume_refuses_changed_settings_and_fresh_runs_refuse_a_used_folder(
    tiny_base: Path, tiny_data: Path, tmp_path: Path
) -> None:
    train_sft(config(tiny_base, tiny_data, tmp_path / "run", steps=2), progress=Progress(io.StringIO()))
    with pytest.raises(TrainError, match="not empty"):
        train_sft(config(tiny_base, tiny_data, tmp_path / "run", steps=2))
    with pytest.raises(TrainError, match=r"different settings \(lr, steps\)"):
        train_sft(config(tiny_base, tiny_data, tmp_path / "run", steps=3, lr=1e-3, resume=True))


def test_bad_data_stops_before_training(tiny_base: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}) + "\n"
    )
    with pytest.raises(TrainError, match=r"bad.jsonl line 1: messages\[1\]: turns must alternate"):
        train_sft(config(tiny_base, data, tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()
