"""The part of a training run SFT and DPO share: Trainer arguments, the run record, running (or
resuming) the Trainer, and writing the final checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from trainer.bases import Base, resolve_base
from trainer.modeling import offline, save_final
from trainer.progress import Progress, install
from trainer.runinfo import CHECKPOINTS, git_revision, last_checkpoint, now, prepare_out, versions, write_info


def begin(cfg: Any) -> tuple[Path, dict[str, Any] | None, Base]:
    """What every run does first: no hub access, the output folder checked (and an earlier run's
    info when resuming), the base model resolved."""
    offline()
    out = Path(cfg.out)
    earlier = prepare_out(out, resume=cfg.resume, settings=cfg.settings())
    return out, earlier, resolve_base(cfg.base, chat_format=cfg.chat_format)


def training_arguments(cfg: Any, out: Path, *, has_eval: bool, lr: float) -> dict[str, Any]:
    """Keyword arguments of TrainingArguments (or trl's configs built on it)."""
    return {
        "output_dir": str(out / CHECKPOINTS),
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": lr,
        "lr_scheduler_type": cfg.schedule,
        "warmup_steps": cfg.warmup,
        "weight_decay": cfg.weight_decay,
        "max_steps": cfg.steps if cfg.steps > 0 else -1,
        "num_train_epochs": cfg.epochs,
        "logging_steps": cfg.log_steps,
        "logging_first_step": True,
        "eval_strategy": "steps" if has_eval and cfg.eval_steps > 0 else "no",
        "eval_steps": cfg.eval_steps or None,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.keep_checkpoints,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "report_to": "none",
        "disable_tqdm": True,
        "remove_unused_columns": False,
        "include_num_input_tokens_seen": "non_padding",
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": False,
        "optim": "adamw_torch",
        "use_cpu": True,
    }


def new_info(kind: str, cfg: Any, base: Base, data: dict[str, Any]) -> dict[str, Any]:
    """The run record written before training starts."""
    return {
        "kind": kind,
        "method": "lora" if cfg.lora else "full",
        "settings": cfg.settings(),
        "base": base.as_dict(),
        "chat_format": base.chat_format,
        "data": data,
        "git_revision": git_revision(),
        "versions": versions(),
        "started": now(),
        "sessions": [],
    }


def run(
    trainer: Any, cfg: Any, out: Path, info: dict[str, Any], *, base: Base, tokenizer: Any, progress: Progress | None
) -> dict[str, Any]:
    """Train (or resume) to the end or to ``cfg.stop_after``; on the end, write ``hf/``."""
    import torch

    progress = progress or Progress()
    progress.stop_after = cfg.stop_after
    install(trainer, progress)
    has_eval = trainer.eval_dataset is not None
    if has_eval and "eval_loss_before" not in info:
        info["eval_loss_before"] = trainer.evaluate()["eval_loss"]
        print(f"eval loss before training: {info['eval_loss_before']:.4f}", flush=True)
    write_info(out, info)

    checkpoint = last_checkpoint(out) if cfg.resume else None
    session: dict[str, Any] = {"started": now(), "resumed_from": checkpoint.name if checkpoint else None}
    began = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    state = trainer.state
    tok_s, s_step = progress.rate(state)
    session.update(
        steps_to=state.global_step,
        seconds=round(time.monotonic() - began, 1),
        tokens_per_second=round(tok_s, 1),
        seconds_per_step=round(s_step, 3),
        peak_rss_mb=peak_rss_mb(),
    )
    info["sessions"].append(session)
    info["log"] = [*info.get("log", []), *progress.history]
    info["max_steps"], info["steps"] = state.max_steps, state.global_step
    if state.global_step < state.max_steps:
        info["status"] = f"stopped at step {state.global_step} of {state.max_steps}; resume with --resume"
        write_info(out, info)
        print(info["status"], flush=True)
        return info

    losses = [entry["loss"] for entry in info["log"] if "loss" in entry]
    info["train_loss_first"] = losses[0] if losses else None
    info["train_loss_last"] = losses[-1] if losses else None
    info["train_loss_mean"] = result.training_loss
    if has_eval:
        info["eval_loss"] = trainer.evaluate()["eval_loss"]
    with torch.no_grad():
        save_final(trainer.model, tokenizer, out, lora=cfg.lora, chat_format=base.chat_format)
    info["status"], info["finished"] = "done", now()
    write_info(out, info)
    print(summary(info) + f"; checkpoint in {out / 'hf'}", flush=True)
    return info


def summary(info: dict[str, Any]) -> str:
    text = f"done: {info['steps']} steps"
    if info.get("train_loss_first") is not None:
        text += f", train loss {info['train_loss_first']:.4f} -> {info['train_loss_last']:.4f}"
    if "eval_loss" in info:
        text += f", eval loss {info['eval_loss_before']:.4f} -> {info['eval_loss']:.4f}"
    return text


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
