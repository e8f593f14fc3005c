"""Supervised fine-tuning on conversations: full or LoRA, loss on the assistant's tokens only.

The output folder holds ``training.json`` (settings, data hash, losses, timings), the Trainer's
checkpoints (``checkpoints/``, resumable: weights, optimizer, schedule, RNG states and the data
position), and when the run finishes ``hf/``, a full checkpoint with LoRA merged in, plus
``adapter/`` for LoRA runs.
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
class SFTConfig:
    base: str
    data: str
    out: Path
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    steps: int = 0  # optimizer steps; 0 means run ``epochs`` over the data
    epochs: float = 1.0
    lr: float = 0.0  # 0 picks 2e-4 for LoRA, 2e-5 for full fine-tuning
    batch_size: int = 4
    grad_accum: int = 1
    warmup: float = 0.1  # a fraction of the steps (< 1) or a number of steps
    schedule: str = "cosine"
    weight_decay: float = 0.0
    max_length: int = 512
    eval_fraction: float = 0.05
    eval_steps: int = 0  # 0: evaluate before and after training only
    save_steps: int = 50
    keep_checkpoints: int = 2
    log_steps: int = 5
    seed: int = 0
    chat_format: str | None = None
    resume: bool = False
    stop_after: int | None = None  # stop after this step, leaving a checkpoint (split a long run)

    def learning_rate(self) -> float:
        return self.lr or (2e-4 if self.lora else 2e-5)

    def settings(self) -> dict[str, Any]:
        """What must match for a resume (everything but where and how long this session runs)."""
        skip = {"out", "resume", "stop_after"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


class ListDataset:
    """A torch-style dataset over encoded samples."""

    def __init__(self, samples: list[d.Sample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        sample = self.samples[index]
        return {"input_ids": sample.input_ids, "labels": sample.labels}


class PadCollator:
    """Right-pad a batch; padded positions get no attention and no loss."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids, labels, mask = [], [], []
        for f in features:
            pad = width - len(f["input_ids"])
            ids.append(f["input_ids"] + [self.pad_id] * pad)
            labels.append(f["labels"] + [d.IGNORE] * pad)
            mask.append([1] * len(f["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


def answer_trainer() -> Any:
    """A Trainer that projects onto the vocabulary only where the next token carries loss.

    The loss equals the usual one (the sum over labelled tokens divided by their count in the
    accumulated batch), but the output layer and softmax run on the answer positions alone. For
    Gemma's 262k-token vocabulary that layer is most of the compute: chat data is mostly prompt.
    """
    import torch
    from transformers import Trainer

    class AnswerTrainer(Trainer):  # type: ignore[misc]
        loss_is_scaled_for_ga = True

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            labels = inputs["labels"]
            targets = labels[:, 1:]
            keep = torch.zeros_like(labels, dtype=torch.bool)
            keep[:, :-1] = targets != d.IGNORE
            outputs = model(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                logits_to_keep=keep,
                use_cache=False,
            )
            wanted = targets[targets != d.IGNORE]
            total = torch.nn.functional.cross_entropy(outputs.logits.float(), wanted, reduction="sum")
            if num_items_in_batch is not None:
                loss = total / num_items_in_batch
            else:
                loss = total / max(wanted.numel(), 1)
                if model.training:
                    loss = loss / self.current_gradient_accumulation_steps
            return (loss, outputs) if return_outputs else loss

    return AnswerTrainer


def train_sft(cfg: SFTConfig, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or resume) supervised fine-tuning; returns the run's ``training.json`` contents."""
    out, earlier, base = begin(cfg)
    conversations = d.load_conversations(cfg.data)
    train_convs, eval_convs = d.split(conversations, cfg.eval_fraction, cfg.seed)
    tokenizer = load_tokenizer(base)
    train_set = d.encode_conversations(tokenizer, base.chat_template, train_convs, cfg.max_length)
    eval_set = d.encode_conversations(tokenizer, base.chat_template, eval_convs, cfg.max_length)
    problems = train_set.problems + eval_set.problems
    for problem in problems:
        print(f"left out: {problem}", flush=True)
    if not train_set.samples:
        raise TrainError(f"{cfg.data}: no usable training samples ({len(problems)} left out)")
    data = {
        "spec": cfg.data,
        "sha256": d.data_sha256(cfg.data),
        "conversations": len(conversations),
        "train_samples": len(train_set.samples),
        "eval_samples": len(eval_set.samples),
        "train_tokens": train_set.tokens,
        "truncated": train_set.truncated + eval_set.truncated,
        "left_out": problems,
    }
    info = earlier or new_info("sft", cfg, base, data)

    from transformers import TrainingArguments, set_seed

    set_seed(cfg.seed)
    model = load_model(base.hf)
    if cfg.lora:
        from peft import get_peft_model

        model = get_peft_model(model, LoraSettings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout).config())
    args = TrainingArguments(**training_arguments(cfg, out, has_eval=bool(eval_set.samples), lr=cfg.learning_rate()))
    trainer = answer_trainer()(
        model=model,
        args=args,
        train_dataset=ListDataset(train_set.samples),
        eval_dataset=ListDataset(eval_set.samples) if eval_set.samples else None,
        data_collator=PadCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    return run(trainer, cfg, out, info, base=base, tokenizer=tokenizer, progress=progress)
