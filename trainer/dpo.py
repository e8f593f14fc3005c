"""Direct preference optimization on ``{prompt, chosen, rejected}`` pairs (``arena battles export
--preferences``), with trl's DPOTrainer: full or LoRA.

The base is usually an SFT run's folder (its ``hf/`` checkpoint and chat format are used). With
LoRA the reference model is the base itself with the adapter switched off; for full training trl
keeps a frozen copy of the base as the reference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer import data as d
from trainer.errors import TrainError
from trainer.loop import begin, new_info, run, training_arguments
from trainer.modeling import LoraSettings, load_model, load_tokenizer
from trainer.progress import Progress


@dataclass
class DPOConfig:
    base: str
    data: str
    out: Path
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    beta: float = 0.1
    steps: int = 0  # optimizer steps; 0 means run ``epochs`` over the pairs
    epochs: float = 1.0
    lr: float = 0.0  # 0 picks 5e-5 for LoRA, 5e-6 for full training
    batch_size: int = 2
    grad_accum: int = 1
    warmup: float = 0.1
    schedule: str = "cosine"
    weight_decay: float = 0.0
    max_length: int = 256
    eval_fraction: float = 0.0
    eval_steps: int = 0
    save_steps: int = 50
    keep_checkpoints: int = 2
    log_steps: int = 5
    seed: int = 0
    chat_format: str | None = None
    resume: bool = False
    stop_after: int | None = None

    def learning_rate(self) -> float:
        return self.lr or (5e-5 if self.lora else 5e-6)

    def settings(self) -> dict[str, Any]:
        skip = {"out", "resume", "stop_after"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


def conversational(pairs: list[d.Preference]) -> Any:
    """trl's conversational preference form, as a ``datasets.Dataset``."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": [m.as_dict() for m in p.prompt],
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
            }
            for p in pairs
        ]
    )


def train_dpo(cfg: DPOConfig, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or resume) DPO; returns the run's ``training.json`` contents."""
    out, earlier, base = begin(cfg)
    pairs = d.load_preferences(cfg.data)
    train_pairs, eval_pairs = d.split(pairs, cfg.eval_fraction, cfg.seed)
    if not train_pairs:
        raise TrainError(f"{cfg.data}: no training pairs")
    data = {
        "spec": cfg.data,
        "sha256": d.data_sha256(cfg.data),
        "pairs": len(pairs),
        "train_pairs": len(train_pairs),
        "eval_pairs": len(eval_pairs),
    }
    info = earlier or new_info("dpo", cfg, base, data)
    tokenizer = load_tokenizer(base)

    from transformers import set_seed
    from trl import DPOConfig as TrlConfig
    from trl import DPOTrainer

    set_seed(cfg.seed)
    model = load_model(base.hf)
    lr = cfg.learning_rate()
    args = TrlConfig(
        **training_arguments(cfg, out, has_eval=bool(eval_pairs), lr=lr),
        beta=cfg.beta,
        max_length=cfg.max_length,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=conversational(train_pairs),
        eval_dataset=conversational(eval_pairs) if eval_pairs else None,
        processing_class=tokenizer,
        peft_config=LoraSettings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout).config() if cfg.lora else None,
    )
    return run(trainer, cfg, out, info, base=base, tokenizer=tokenizer, progress=progress)
