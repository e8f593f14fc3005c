"""Progress for the trainers: a bar on a terminal, a line per log step everywhere, with loss,
tokens per second and the time left."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from transformers import TrainerCallback


def duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Progress(TrainerCallback):  # type: ignore[misc]
    """Replaces the Trainer's own bar and printer.

    Tokens per second count the non-padding input tokens of this session (a resumed run starts
    its clock at the resume), so the figure is the real throughput of this machine.
    """

    def __init__(self, out: TextIO | None = None, *, bar: bool | None = None, stop_after: int | None = None) -> None:
        self.out = out or sys.stderr
        self.bar_enabled = self.out.isatty() if bar is None else bar
        self.stop_after = stop_after
        self.bar: Any = None
        self.start = 0.0
        self.start_step = 0
        self.start_tokens = 0
        self.last: dict[str, float] = {}
        self.history: list[dict[str, float]] = []

    def rate(self, state: Any) -> tuple[float, float]:
        """(tokens per second, seconds per step) over this session."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        steps = max(state.global_step - self.start_step, 1)
        return (state.num_input_tokens_seen - self.start_tokens) / elapsed, elapsed / steps

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.monotonic()
        self.start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen
        if self.bar_enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, file=self.out, unit="step")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            tok_s, _ = self.rate(state)
            self.bar.set_postfix(loss=f"{self.last.get('loss', float('nan')):.3f}", tok_s=f"{tok_s:.0f}")
        if self.stop_after is not None and state.global_step >= self.stop_after:
            control.should_save = True  # leave a checkpoint to resume from
            control.should_training_stop = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = dict(logs or {})
        if not self.start or not any(k in logs for k in ("loss", "eval_loss")):
            return  # an evaluation before training: the trainer reports it itself
        self.last.update(logs)
        self.history.append({"step": state.global_step, **logs})
        tok_s, s_step = self.rate(state)
        eta = s_step * (state.max_steps - state.global_step)
        parts = [f"step {state.global_step}/{state.max_steps}"]
        for key, label in (("loss", "loss"), ("eval_loss", "eval loss"), ("rewards/margins", "margin")):
            if key in logs:
                parts.append(f"{label} {logs[key]:.4f}")
        if "learning_rate" in logs:
            parts.append(f"lr {logs['learning_rate']:.2e}")
        parts += [f"{tok_s:.0f} tok/s", f"{s_step:.2f} s/step", f"ETA {duration(eta)}"]
        line = " | ".join(parts)
        if self.bar is not None:
            self.bar.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def install(trainer: Any, progress: Progress) -> None:
    """Swap the Trainer's printer and bar for ours."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(progress)
