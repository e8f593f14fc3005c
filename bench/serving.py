"""Serving speed on the bundled Gemma model: ours against two anchors, measured in one run.

  (a) llama-cpp-python in-process, a direct streaming loop: the ceiling
  (b) our /v1/chat/completions stream (`arena serve`)
  (c) llama_cpp.server from the llama-cpp-python[server] extra (its defaults, and with
      n_threads matched to ours)

Same prompts, greedy decoding, same max_tokens. Rounds alternate between the systems so that
machine noise hits all of them alike. Prints tokens/s, time to first token and the ratios.

    python bench/serving.py [--rounds 3] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Write a long story about a dragon who learns to bake bread.",
    "Explain, step by step, how a bicycle works.",
    "List twenty facts about the ocean.",
]


@dataclass
class Run:
    tokens: int
    ttft: float
    decode_s: float

    @property
    def rate(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {url}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready: {url}")


def stream_http(base: str, model: str, prompt: str, max_tokens: int) -> Run:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = last = 0.0
    pieces = 0
    usage_tokens = None
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=300) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage_tokens = chunk["usage"]["completion_tokens"]
            choices = chunk.get("choices") or []
            if choices and choices[0].get("delta", {}).get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                pieces += 1
    tokens = usage_tokens if usage_tokens is not None else pieces
    return Run(tokens, first - start, last - first)


def in_process(llm: object, prompt: str, max_tokens: int) -> Run:
    start = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for chunk in llm.create_chat_completion(  # type: ignore[attr-defined]
        [{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content"):
            now = time.perf_counter()
            first = first or now
            last = now
            tokens += 1
    return Run(tokens, first - start, last - first)


def concurrent(base: str, models: list[str], prompt: str, max_tokens: int) -> tuple[int, float]:
    results: list[Run] = []
    start = time.perf_counter()
    threads = [
        threading.Thread(target=lambda m=m: results.append(stream_http(base, m, prompt, max_tokens))) for m in models
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(r.tokens for r in results), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    import llama_cpp

    from app.registry.spec import load_models

    path = load_models(None)[0].resolved_weights()
    cores = len(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(cmd: list[str], ready: str) -> None:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_ready(ready, proc)

    ours_port, theirs_port, theirs2_port = free_port(), free_port(), free_port()
    try:
        spawn(
            [sys.executable, "-m", "app", "serve", "--port", str(ours_port), "--db", "/tmp/bench-serving.db"],
            f"http://127.0.0.1:{ours_port}/ready",
        )
        server_cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            path,
            "--chat_format",
            "gemma",
            "--n_ctx",
            "4096",
        ]
        spawn([*server_cmd, "--port", str(theirs_port)], f"http://127.0.0.1:{theirs_port}/v1/models")
        spawn(
            [*server_cmd, "--port", str(theirs2_port), "--n_threads", str(cores)],
            f"http://127.0.0.1:{theirs2_port}/v1/models",
        )
        llm = llama_cpp.Llama(path, chat_format="gemma", n_ctx=4096, n_threads=cores, verbose=False)

        systems = {
            "a in-process": lambda p: in_process(llm, p, args.max_tokens),
            "b arena /v1": lambda p: stream_http(
                f"http://127.0.0.1:{ours_port}", "gemma-3-270m-greedy", p, args.max_tokens
            ),
            "c llama_cpp.server": lambda p: stream_http(f"http://127.0.0.1:{theirs_port}", "x", p, args.max_tokens),
            f"c' llama_cpp.server n_threads={cores}": lambda p: stream_http(
                f"http://127.0.0.1:{theirs2_port}", "x", p, args.max_tokens
            ),
        }
        for fn in systems.values():  # warm-up
            fn("Hello")
        runs: dict[str, list[Run]] = {name: [] for name in systems}
        for _ in range(args.rounds):
            for prompt in PROMPTS:
                for name, fn in systems.items():
                    runs[name].append(fn(prompt))

        ours = f"http://127.0.0.1:{ours_port}"
        single_tokens, single_wall = 0, 0.0
        pair_tokens, pair_wall = 0, 0.0
        for prompt in PROMPTS:
            r = stream_http(ours, "gemma-3-270m-greedy", prompt, args.max_tokens)
            single_tokens += r.tokens
            single_wall += r.ttft + r.decode_s
            t, w = concurrent(ours, ["gemma-3-270m-greedy", "gemma-3-270m-t0.8"], prompt, args.max_tokens)
            pair_tokens, pair_wall = pair_tokens + t, pair_wall + w
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)

    rate = {n: statistics.median(r.rate for r in rs) for n, rs in runs.items()}
    ttft = {n: statistics.median(r.ttft for r in rs) * 1000 for n, rs in runs.items()}
    toks = {n: sum(r.tokens for r in rs) for n, rs in runs.items()}
    print(
        f"\nbench/serving.py  model=gemma-3-270m Q4_K_M  cores={cores}  max_tokens={args.max_tokens}  "
        f"rounds={args.rounds}x{len(PROMPTS)} prompts, greedy\n"
    )
    print(f"{'system':<34}{'tok/s (median)':>16}{'TTFT ms (median)':>18}{'tokens':>9}")
    for name in systems:
        print(f"{name:<34}{rate[name]:>16.1f}{ttft[name]:>18.1f}{toks[name]:>9}")
    a, b = rate["a in-process"], rate["b arena /v1"]
    c, c2 = rate["c llama_cpp.server"], rate[f"c' llama_cpp.server n_threads={cores}"]
    print()
    print(f"b/a  = {b / a:.3f}   (target >= 0.95)")
    print(f"b/c  = {b / c:.3f}   (target >= 1.5; c at its default n_threads)")
    print(f"b/c' = {b / c2:.3f}   (c with n_threads matched to ours)")
    single = single_tokens / single_wall
    pair = pair_tokens / pair_wall
    print(
        f"two streams at once: {pair:.1f} tok/s total vs {single:.1f} tok/s single "
        f"(ratio {pair / single:.2f}, target >= 1.0)"
    )


if __name__ == "__main__":
    main()
