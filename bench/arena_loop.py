"""Close the trainer's loop once, through the commands and APIs a user runs.

1. `arena serve` with the default models (the two base presets, plus the demo chat model that
   `make demo-model` built);
2. anonymous battles through the JSON API, voted by a scripted voter that prefers an answer which
   ends cleanly in the turn format (finish_reason "stop", not cut off by max_tokens, not empty);
3. the leaderboard with its intervals (`/api/v1/leaderboard`);
4. `arena battles export --preferences`, then one DPO round (`arena train dpo --lora`) on the demo model.

    python bench/arena_loop.py [--battles 30] [--dpo-steps 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ROOT, free_port  # noqa: E402

DEMO = Path.home() / ".cache" / "arena" / "demo-model"
PROMPTS = [
    "What is the capital of Italy?",
    "Name a fruit that is yellow.",
    "How many days are in a week?",
    "Give me one tip for sleeping better.",
    "What colour is the sky on a clear day?",
    "Write one sentence about dogs.",
    "What is 3 plus 4?",
    "Say hello in French.",
    "What do bees make?",
    "Suggest a name for a cat.",
]


def clean(answer: dict) -> bool:
    return answer.get("finish_reason") == "stop" and bool(answer.get("text", "").strip()) and not answer.get("error")


def verdict(a: dict, b: dict) -> str:
    if clean(a) != clean(b):
        return "model_a" if clean(a) else "model_b"
    return "tie" if clean(a) else "tie (bothbad)"


def serve(db: Path, port: int) -> subprocess.Popen[bytes]:
    flags = ["--generation-rate", "100000/60", "--model-rate", "100000/60", "--battle-rate", "100000/60"]
    flags += ["--vote-rate", "100000/60"]
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(port), "--db", str(db), *flags]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("arena serve did not get ready")


def battles(base: str, n: int) -> dict[str, int]:
    tally: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=300) as client:
        for i in range(n):
            prompt = PROMPTS[i % len(PROMPTS)]
            made = client.post("/api/v1/battles", json={"prompt": prompt, "wait": True})
            made.raise_for_status()
            turn = made.json()["turns"][0]
            winner = verdict(turn["a"], turn["b"])
            voted = client.post(f"/api/v1/battles/{made.json()['id']}/vote", json={"winner": winner})
            voted.raise_for_status()
            names = voted.json()
            key = f"{winner}: {names.get('model_a')} vs {names.get('model_b')}"
            tally[key] = tally.get(key, 0) + 1
    return tally


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--battles", type=int, default=30)
    parser.add_argument("--dpo-steps", type=int, default=8)
    args = parser.parse_args()
    if not (DEMO / "export.json").is_file():
        sys.exit("no demo model: run `make demo-model` first")
    work = Path(tempfile.mkdtemp(prefix="arena-loop-"))
    db, port = work / "loop.db", free_port()
    proc = serve(db, port)
    try:
        began = time.perf_counter()
        tally = battles(f"http://127.0.0.1:{port}", args.battles)
        took = time.perf_counter() - began
        board = httpx.get(f"http://127.0.0.1:{port}/api/v1/leaderboard", timeout=120).json()
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"\n{args.battles} anonymous battles in {took:.0f} s; votes:")
    for key, count in sorted(tally.items()):
        print(f"  {count:3d}  {key}")
    print("\nleaderboard (overall):")
    print(json.dumps(board, indent=1)[:3000])
    prefs = work / "prefs.jsonl"
    arena = [sys.executable, "-m", "app"]
    out = subprocess.run(
        [*arena, "battles", "export", "--preferences", str(prefs), "--db", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print("\n" + (out.stdout + out.stderr).strip())
    if not prefs.is_file() or not prefs.read_text().strip():
        return
    dpo = [
        sys.executable,
        "-m",
        "trainer",
        "dpo",
        "--base",
        str(DEMO),
        "--data",
        str(prefs),
        "--out",
        str(work / "dpo"),
        "--lora",
        "--steps",
        str(args.dpo_steps),
        "--batch-size",
        "2",
        "--max-length",
        "256",
        "--eval-fraction",
        "0",
    ]
    began = time.perf_counter()
    out = subprocess.run(dpo, cwd=ROOT, capture_output=True, text=True)
    print(f"\nDPO round ({args.dpo_steps} LoRA steps) in {time.perf_counter() - began:.0f} s, rc={out.returncode}:")
    print("\n".join((out.stdout + out.stderr).strip().splitlines()[-15:]))


if __name__ == "__main__":
    main()
