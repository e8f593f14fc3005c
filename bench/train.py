"""The trainer on the bundled Gemma 3 270M: training throughput, conversion, and the served result.

Measured, each training phase in its own process (so peak RSS is that phase's own):
- SFT (LoRA and full) on the seed set, and DPO (LoRA and full) on pairs made from it: tokens/s
  (non-padding input tokens), seconds per optimizer step, peak RSS;
- export of the LoRA run: the adapter GGUF, the merged q8_0 GGUF, and llama.cpp's Q4_K_M
  quantization of an f16 file (seconds);
- the served result through ``arena serve``'s /v1 (the user's path), greedy, against the anchor
  measured in the same server: the bundled base GGUF alone. Rounds alternate between the entries.

The DPO pairs are synthetic (chosen: the seed answer; rejected: the question echoed back, which is
what the base model tends to do): the bench measures speed, not quality.

    python bench/train.py [--steps 6] [--rounds 2] [--max-tokens 64] [--work DIR [--serve-only]]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serving import free_port, stream_http, wait_ready  # noqa: E402

BASE = "bundled:gemma-3-270m"
PROMPTS = ["What is the capital of France?", "Give me three tips for better sleep.", "Write a haiku about the sea."]


def train(kind: str, out: Path, data: str, steps: int, lora: bool) -> dict:
    """One training phase in a child process; returns its training.json."""
    cmd = [sys.executable, "-m", "trainer", kind, "--base", BASE, "--data", data, "--out", str(out)]
    cmd += ["--steps", str(steps), "--log-steps", "1", "--save-steps", "1000", "--eval-fraction", "0"]
    cmd += ["--max-length", "256", "--batch-size", "4" if kind == "sft" else "2"]
    cmd += ["--lora"] if lora else []
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "training.json").read_text())


def dpo_pairs(path: Path) -> str:
    from trainer.data import load_conversations

    with path.open("w") as f:
        for conv in load_conversations("bundled:chat-seed")[:64]:
            prompt = [m.as_dict() for m in conv.messages[:-1]]
            question = prompt[-1]["content"]
            f.write(json.dumps({"prompt": prompt, "chosen": conv.messages[-1].content, "rejected": question}) + "\n")
    return str(path)


def training_rows(work: Path, steps: int) -> list[tuple[str, dict]]:
    pairs = dpo_pairs(work / "pairs.jsonl")
    rows = []
    for kind, lora in (("sft", True), ("sft", False), ("dpo", True), ("dpo", False)):
        name = f"{kind} {'lora' if lora else 'full'}"
        info = train(kind, work / name.replace(" ", "-"), "bundled:chat-seed" if kind == "sft" else pairs, steps, lora)
        session = info["sessions"][-1]
        rows.append((name, session))
        print(
            f"{name:9s} {session['tokens_per_second']:8.1f} tok/s {session['seconds_per_step']:6.2f} s/step "
            f"peak RSS {session['peak_rss_mb'] / 1024:5.2f} GB",
            flush=True,
        )
    return rows


def conversions(run: Path) -> dict[str, float]:
    from trainer import convert
    from trainer.bases import bundled_gguf
    from trainer.export import export_run

    times = {"lora adapter": export_run(run, "lora")["convert_seconds"]}
    times["merged q8_0"] = export_run(run, "q8_0")["convert_seconds"]
    f16 = run / "f16.gguf"
    times["merged f16"] = convert.convert_model(run / "hf", f16, "f16", vocab_gguf=str(bundled_gguf("gemma-3-270m")))
    times["quantize Q4_K_M"] = convert.quantize(f16, run / "q4.gguf", "Q4_K_M")
    for name, seconds in times.items():
        print(f"{name:16s} {seconds:6.1f} s", flush=True)
    return times


def models_file(run: Path, path: Path) -> list[str]:
    entries = {
        "base": {"weights": BASE},
        "base-lora": {"weights": BASE, "lora": str(run / "adapter.gguf")},
        "merged-q8_0": {"weights": str(run / "model-q8_0.gguf")},
        "merged-q4_k_m": {"weights": str(run / "q4.gguf")},
    }
    text = ""
    for model_id, extra in entries.items():
        fields = "\n".join(f'{k} = "{v}"' for k, v in extra.items())
        text += f'[[models]]\nid = "{model_id}"\nengine = "llama.cpp"\nchat_format = "gemma"\n{fields}\n\n'
    path.write_text(text)
    return list(entries)


def served(run: Path, work: Path, rounds: int, max_tokens: int) -> None:
    ids = models_file(run, work / "models.toml")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(port), "--db", str(work / "arena.db")]
    cmd += ["--models", str(work / "models.toml"), "--model-dir", str(work)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rates: dict[str, list[float]] = {m: [] for m in ids}
    try:
        wait_ready(f"http://127.0.0.1:{port}/ready", proc)
        base_url = f"http://127.0.0.1:{port}"
        for _ in range(rounds):
            for model in ids:
                for prompt in PROMPTS:
                    rates[model].append(stream_http(base_url, model, prompt, max_tokens).rate)
    finally:
        proc.terminate()
        proc.wait(30)
    anchor = statistics.median(rates["base"])
    for model, values in rates.items():
        median = statistics.median(values)
        print(f"{model:14s} {median:6.1f} tok/s decode ({median / anchor:4.2f}x the base GGUF)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--serve-only", action="store_true", help="Reuse --work's runs and exports; time serving.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    if not args.serve_only:
        print(f"training on {len(os.sched_getaffinity(0))} cores, {args.steps} steps each; work in {work}", flush=True)
        training_rows(work, args.steps)
        conversions(work / "sft-lora")
    served(work / "sft-lora", work, args.rounds, args.max_tokens)
    print(f"total {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
