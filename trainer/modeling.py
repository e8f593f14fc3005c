"""Loading a base for training, wrapping it with LoRA, and saving the final checkpoint: the parts
SFT and DPO share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.bases import Base
from trainer.runinfo import ADAPTER, FINAL

# The marker that ends an assistant turn in each named turn format.
END_OF_TURN = {"gemma": "<end_of_turn>", "chatml": "<|im_end|>", "llama-3": "<|eot_id|>"}


def offline() -> None:
    """Nothing the trainer does needs the Hugging Face hub: never let a library reach for it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0

    def config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )


def load_tokenizer(base: Base) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.hf)
    tokenizer.chat_template = base.chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding only: padded positions carry no loss
    return tokenizer


def load_model(path: Path | str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)


def end_token_ids(tokenizer: Any, chat_format: str) -> list[int]:
    """EOS plus the turn format's end-of-turn token, so generation stops where a turn ends."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    marker = END_OF_TURN.get(chat_format)
    if marker is not None:
        token = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(token, int) and token != tokenizer.unk_token_id and token not in ids:
            ids.append(token)
    return ids


def save_final(model: Any, tokenizer: Any, out: Path, *, lora: bool, chat_format: str) -> None:
    """Write ``hf/`` (a full checkpoint, LoRA merged in) and, for LoRA, ``adapter/``."""
    if lora:
        model.save_pretrained(out / ADAPTER)
        tokenizer.save_pretrained(out / ADAPTER)
        model = model.merge_and_unload()
    eos = end_token_ids(tokenizer, chat_format)
    if len(eos) > 1:  # the trained model ends its turns with the turn marker: make that its EOS
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos[-1])
        eos = [eos[-1], *eos[:-1]]
    model.generation_config.eos_token_id = eos if len(eos) > 1 else (eos[0] if eos else None)
    model.config.use_cache = True
    model.save_pretrained(out / FINAL)
    tokenizer.save_pretrained(out / FINAL)
