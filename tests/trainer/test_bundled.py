"""Integration: a few LoRA steps on the seed set teach the bundled Gemma 3 270M base the turn
format; it then answers a seed question ending in <end_of_turn>, where the base does not."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.trainer.conftest import need

pytestmark = pytest.mark.integration

QUESTION = "What is the capital of France?"


def answer(folder: Path, template: str) -> tuple[str, bool]:
    """Greedy answer to QUESTION in Gemma's turn format, and whether it ended with <end_of_turn>."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.data import Message, render

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    end = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    prompt = render(tokenizer, template, [Message("user", QUESTION)], generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=[end], pad_token_id=end)
    new = out[0, ids.shape[1] :].tolist()
    return tokenizer.decode(new, skip_special_tokens=True), end in new


def test_lora_steps_teach_the_bundled_base_to_end_its_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("peft")
    need("gguf")
    from trainer.bases import resolve_base
    from trainer.progress import Progress
    from trainer.sft import SFTConfig, train_sft
    from trainer.templates import GEMMA

    monkeypatch.setenv("ARENA_CACHE", str(Path.home() / ".cache" / "arena"))  # the converted base is reused
    base = resolve_base("bundled:gemma-3-270m")
    text, ended = answer(base.hf, GEMMA)
    assert not ended, text
    cfg = SFTConfig(
        base="bundled:gemma-3-270m", data="bundled:chat-seed", out=tmp_path / "run", lora=True, steps=48, lr=1e-3,
        batch_size=8, max_length=256, eval_fraction=0.0, log_steps=4, warmup=2,
    )  # fmt: skip
    info = train_sft(cfg, progress=Progress(io.StringIO()))
    assert info["train_loss_last"] < info["train_loss_first"]
    text, ended = answer(tmp_path / "run" / "hf", GEMMA)
    assert ended and "Paris" in text
