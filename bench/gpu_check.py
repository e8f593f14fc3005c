"""GPU smoke check for the in-process engines: transformers on CUDA, then vLLM if installed.

    python bench/gpu_check.py [MODEL_DIR] [--requests 3] [--max-tokens 64]

Without MODEL_DIR it builds the tiny random Llama checkpoint that the tests use
(``tests/helpers/tiny_hf.py``) in a temporary folder. For each engine it streams a few
requests, checks the token counts, the finish reason and that closing a stream stops the
work, and prints tokens/s next to transformers' own ``generate()`` measured in the same run.
Exit status: 0 when every check passed or was skipped ("SKIP: no CUDA" without a GPU),
1 when any failed. ``--device cpu`` runs the transformers part on the CPU, to try the script.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.engines.base import ChatMessage, Delta, GenerationRequest  # noqa: E402

PROMPT = [ChatMessage("user", "Tell me about the arena.")]


@dataclass
class Row:
    engine: str
    status: str  # PASS, FAIL or SKIP
    device: str = "-"
    tokens_per_s: float | None = None
    detail: str = ""


def request(i: int, max_tokens: int, **kwargs: Any) -> GenerationRequest:
    kwargs.setdefault("temperature", 0.0 if i % 2 == 0 else 0.8)
    return GenerationRequest(f"gpu-check-{i}", messages=list(PROMPT), max_tokens=max_tokens, seed=i, **kwargs)


async def timed(stream: AsyncIterator[Delta]) -> tuple[list[Delta], float]:
    start = time.perf_counter()
    deltas = [d async for d in stream]
    return deltas, time.perf_counter() - start


def check_counts(deltas: list[Delta], max_tokens: int) -> str | None:
    """A problem with a finished stream, or None."""
    if not deltas or deltas[-1].finish_reason not in ("stop", "length"):
        return f"bad finish: {deltas[-1] if deltas else 'no deltas'}"
    last = deltas[-1]
    if last.finish_reason == "length" and last.completion_tokens != max_tokens:
        return f"length finish after {last.completion_tokens} of {max_tokens} tokens"
    if any(a.completion_tokens > b.completion_tokens for a, b in pairwise(deltas)):
        return "completion_tokens went backwards"
    return None


async def run_requests(engine: Any, n: int, max_tokens: int) -> tuple[float, list[str]]:
    """Stream ``n`` requests one after another; return (tokens/s, problems)."""
    tokens = 0
    seconds = 0.0
    problems = []
    for i in range(n):
        deltas, elapsed = await timed(engine.generate(request(i, max_tokens)))
        problem = check_counts(deltas, max_tokens)
        if problem:
            problems.append(f"request {i}: {problem}")
        tokens += deltas[-1].completion_tokens if deltas else 0
        seconds += elapsed
    return tokens / seconds if seconds else 0.0, problems


async def check_cancel(engine: Any, context: int) -> str | None:
    """Close a long stream after two deltas; the engine must stop, short of the end if it says."""
    target = max(context // 2, 8)
    gen = engine.generate(request(99, target, temperature=0.0))
    try:
        await gen.__anext__()
        await gen.__anext__()
    finally:
        await gen.aclose()
    for _ in range(500):
        stats = engine.stats()
        if stats.running + stats.queue_depth == 0:
            break
        await asyncio.sleep(0.01)
    else:
        return "stream still running 5 s after aclose()"
    generated = getattr(engine, "last_generated", None)
    if generated is not None and generated >= target:
        return f"aclose() did not stop the worker ({generated} of {target} tokens made)"
    return None


async def check_transformers(path: str, device: str, n: int, max_tokens: int) -> list[Row]:
    import torch

    from app.engines.transformers import TransformersEngine

    engine = TransformersEngine(path, device=device)
    await asyncio.to_thread(engine.load)
    try:
        used = str(next(engine._model.parameters()).device)
        tps, problems = await run_requests(engine, n, max_tokens)
        cancel = await check_cancel(engine, engine.max_context)
        if cancel:
            problems.append(cancel)
        if device.startswith("cuda") and not used.startswith("cuda"):
            problems.append(f"weights are on {used}, not CUDA")
        anchor = await asyncio.to_thread(_hf_generate_tps, engine, torch, max_tokens)
    finally:
        await engine.close()
    return [
        Row("transformers", "FAIL" if problems else "PASS", used, tps, "; ".join(problems)),
        Row("  anchor: hf generate()", "PASS", used, anchor, "same model, greedy"),
    ]


def _hf_generate_tps(engine: Any, torch: Any, max_tokens: int) -> float:
    ids = engine.encode_prompt(request(0, max_tokens))
    model, tok = engine._model, engine._tokenizer
    inputs = torch.tensor([ids], device=model.device)
    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
        if inputs.is_cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return (out.shape[1] - len(ids)) / elapsed


async def check_vllm(path: str, n: int, max_tokens: int, memory: float) -> Row:
    from app.engines.vllm import VLLMEngine

    engine = VLLMEngine(path, gpu_memory_utilization=memory, engine_args={"enforce_eager": True})
    try:
        await engine.start()
        tps, problems = await run_requests(engine, n, max_tokens)
        cancel = await check_cancel(engine, engine.max_context)
        if cancel:
            problems.append(cancel)
        return Row("vllm", "FAIL" if problems else "PASS", "cuda", tps, "; ".join(problems))
    except Exception as exc:  # report, don't crash: the summary still prints
        return Row("vllm", "FAIL", "cuda", None, f"{type(exc).__name__}: {exc}")
    finally:
        await engine.close()


def print_summary(rows: list[Row]) -> None:
    print(f"\n{'engine':<26} {'status':<7} {'device':<8} {'tokens/s':>10}  detail")
    for r in rows:
        tps = f"{r.tokens_per_s:10.1f}" if r.tokens_per_s is not None else f"{'-':>10}"
        print(f"{r.engine:<26} {r.status:<7} {r.device:<8} {tps}  {r.detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU smoke check for the in-process engines.")
    parser.add_argument("model", nargs="?", help="checkpoint folder (default: build a tiny one)")
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--vllm-memory", type=float, default=0.3, help="gpu_memory_utilization")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        print("SKIP: torch is not installed (pip install -e '.[hf]')")
        return 0
    cuda = torch.cuda.is_available()
    if args.device.startswith("cuda") and not cuda:
        print("SKIP: no CUDA")
        return 0

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            from tests.helpers.tiny_hf import build_tiny_model

            path = str(build_tiny_model(Path(tmp) / "tiny-llama"))
        print(f"model: {path}  torch {torch.__version__}  CUDA: {cuda}")
        try:
            rows += asyncio.run(check_transformers(path, args.device, args.requests, args.max_tokens))
        except Exception as exc:
            rows.append(Row("transformers", "FAIL", args.device, None, f"{type(exc).__name__}: {exc}"))

        from app.engines.vllm import vllm_available

        if not cuda:
            rows.append(Row("vllm", "SKIP", detail="no CUDA"))
        elif not vllm_available():
            rows.append(Row("vllm", "SKIP", detail="vllm is not installed (gpu extra)"))
        else:
            rows.append(asyncio.run(check_vllm(path, args.requests, args.max_tokens, args.vllm_memory)))

    print_summary(rows)
    failed = [r.engine for r in rows if r.status == "FAIL"]
    print(f"\n{'FAILED: ' + ', '.join(failed) if failed else 'OK: all checks passed or skipped'}")
    return 1 if failed else 0


if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this module
    sys.exit(main())
