"""Do the default models answer? 20 fixed simple prompts through /v1 of a real `arena serve`.

For each model of the embedded default models file (the two chat models in anonymous battles,
and the two base presets of the bundled Gemma as the anchor), with each model's own defaults:

  stop   the share of answers that end with finish_reason "stop" (not cut off at max_tokens)
  loop   the share that loop: some 4-gram of words occurs 3 or more times
  echo   the share that echo the prompt: the whole prompt (normalised) appears in the answer
  tok/s  decode speed: completion tokens after the first over the time after the first token
  ttft   mean time to the first token, in seconds (prefill; noisy on a shared machine)

Each prompt is sent with a fixed seed (1000 + its index), so two settings see the same draws.
`--sweep` also tries a few sampling settings on the chat models, to choose their defaults.
The demo chat model is served when `make demo-model` built it (ARENA_DEMO_MODEL, or the cache).

    python bench/default_models.py [--sweep] [--models a,b] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "What is the capital of France? Answer in one sentence.",
    "Write a haiku about autumn leaves.",
    "How do I boil an egg? Give short steps.",
    "Name three colours of the rainbow, one per line.",
    "What is 12 plus 30?",
    "Give me two tips for sleeping better.",
    'Translate "good morning" into Spanish.',
    "Write one sentence about why the sky is blue.",
    "What is a noun? Explain in one sentence with an example.",
    "Suggest a name for a friendly robot.",
    "List four fruits that are red.",
    "Write a short thank-you note to a neighbour who watered my plants.",
    "What do bees make?",
    "Explain what a rainbow is to a five-year-old.",
    "Give me a simple recipe for a cheese sandwich.",
    'What is the opposite of "cold"?',
    "Write two sentences about a cat who likes boxes.",
    "How many days are there in a week?",
    "What should I pack for a day at the beach? Give a short list.",
    "Tell me a fun fact about the moon.",
]

CHAT_MODELS = ("gemma-3-270m-chat", "smollm2-135m-instruct")
ANCHORS = ("gemma-3-270m-greedy", "gemma-3-270m-t0.8")

# Settings tried on the chat models with --sweep (on top of each model's own defaults).
SWEEP: list[dict[str, Any]] = [
    {"temperature": 0.0},
    {"temperature": 0.7, "top_p": 0.95},
    {"temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.15},
]

WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def loops(text: str, n: int = 4, times: int = 3) -> bool:
    """Some n-gram of words occurs ``times`` or more times."""
    w = words(text)
    grams = Counter(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    return any(count >= times for count in grams.values())


def echoes(prompt: str, answer: str) -> bool:
    """The whole prompt, as words, appears in the answer."""
    p, a = " ".join(words(prompt)), " ".join(words(answer))
    return bool(p) and f" {p} " in f" {a} "


@dataclass
class Tally:
    answers: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0  # decoded after the first token
    seconds: float = 0.0  # spent decoding them
    ttfts: list[float] = field(default_factory=list)

    def add(self, prompt: str, text: str, finish: str, tokens: int, ttft: float, decode_s: float) -> None:
        self.answers.append(
            {"prompt": prompt, "text": text, "finish": finish, "loop": loops(text), "echo": echoes(prompt, text)}
        )
        self.tokens += max(tokens - 1, 0)
        self.seconds += decode_s
        self.ttfts.append(ttft)

    def share(self, key: str) -> float:
        if key == "stop":
            hits = sum(a["finish"] == "stop" for a in self.answers)
        else:
            hits = sum(bool(a[key]) for a in self.answers)
        return hits / len(self.answers) if self.answers else 0.0

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def row(self) -> dict[str, float]:
        ttft = sum(self.ttfts) / len(self.ttfts) if self.ttfts else 0.0
        return {
            "stop": self.share("stop"),
            "loop": self.share("loop"),
            "echo": self.share("echo"),
            "tok_s": self.rate,
            "ttft": ttft,
        }


def run(http: httpx.Client, model: str, settings: dict[str, Any]) -> Tally:
    tally = Tally()
    for index, prompt in enumerate(PROMPTS):
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "seed": 1000 + index,
            "stream": True,
            "stream_options": {"include_usage": True},
            **settings,
        }
        began = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        finish, tokens = "", 0
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk.get("choices", []):
                    if choice["delta"].get("content"):
                        first = first or time.perf_counter()
                        parts.append(choice["delta"]["content"])
                    finish = choice.get("finish_reason") or finish
        end = time.perf_counter()
        first = first or end
        tally.add(prompt, "".join(parts), finish, tokens, first - began, end - first)
    return tally


def label(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "its defaults"


def print_table(rows: list[tuple[str, str, dict[str, float]]], anchor: dict[str, float] | None) -> None:
    print(
        f"{'model':<24} {'settings':<66} {'stop':>5} {'loop':>5} {'echo':>5} {'tok/s':>6} {'x anchor':>8} {'ttft':>5}"
    )
    for model, setting, r in rows:
        ratio = f"{r['tok_s'] / anchor['tok_s']:.2f}" if anchor and anchor["tok_s"] else "-"
        print(
            f"{model:<24} {setting:<66} {r['stop']:>5.0%} {r['loop']:>5.0%} {r['echo']:>5.0%} {r['tok_s']:>6.1f} {ratio:>8}"
            f" {r['ttft']:>5.2f}"
        )


def main() -> int:
    from tests.helpers.server import ArenaServer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true", help="also try the SWEEP settings on the chat models")
    parser.add_argument("--models", default="", help="comma-separated model ids (default: all defaults served)")
    parser.add_argument("--json", type=Path, help="write every answer and figure here")
    parser.add_argument("--show", action="store_true", help="print each answer")
    args = parser.parse_args()

    from app.registry.spec import demo_model_dir

    folder = demo_model_dir()
    env = {"ARENA_DEMO_MODEL": str(folder) if folder else ""}
    with tempfile.TemporaryDirectory() as tmp:
        server = ArenaServer(Path(tmp), "--parallel", "1", env=env)
        try:
            with httpx.Client(base_url=server.base, timeout=600) as http:
                served = [m["id"] for m in http.get("/v1/models").json()["data"]]
                wanted = [m for m in (args.models.split(",") if args.models else [*CHAT_MODELS, *ANCHORS]) if m]
                missing = [m for m in wanted if m not in served]
                if missing:
                    print(f"not served (skipped): {', '.join(missing)}; served: {', '.join(served)}", file=sys.stderr)
                models = [m for m in wanted if m in served]
                rows: list[tuple[str, str, dict[str, float]]] = []
                out: dict[str, Any] = {}
                plans = [(m, {}) for m in models]
                if args.sweep:
                    plans += [(m, s) for m in models if m in CHAT_MODELS for s in SWEEP]
                for model, settings in plans:
                    tally = run(http, model, settings)
                    rows.append((model, label(settings), tally.row()))
                    out[f"{model} | {label(settings)}"] = {"figures": tally.row(), "answers": tally.answers}
                    if args.json:  # as it goes: a long run interrupted keeps what it measured
                        args.json.write_text(json.dumps(out, indent=2) + "\n")
                    print(f"... {model} ({label(settings)}): {tally.row()}", file=sys.stderr, flush=True)
                    if args.show:
                        for a in tally.answers:
                            print(
                                f"  [{a['finish']}{' loop' if a['loop'] else ''}{' echo' if a['echo'] else ''}] "
                                f"{a['prompt']} -> {a['text'][:200]!r}",
                                file=sys.stderr,
                            )
        finally:
            server.stop()
    anchor = next((r for m, s, r in rows if m == ANCHORS[0] and s == "its defaults"), None)
    print(
        f"\n{len(PROMPTS)} prompts per row, sequential, --parallel 1; tok/s is the decode speed, ttft the mean seconds"
    )
    print(
        f"to the first token; the machine is shared, so both are noisy. x anchor: tok/s over {ANCHORS[0]}, same run.\n"
    )
    print_table(rows, anchor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
