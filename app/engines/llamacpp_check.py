"""The start-up check of the llama.cpp engine: one token from a GGUF file, in a child process.

A llama-cpp-python build that uses instructions this CPU lacks or traps (a native build made on
another host, or AMX on a VM that advertises but traps it) dies with SIGILL on the first token and
takes the whole process with it. Generating that token in a child first turns the crash into a
message: the model is marked down, and the server goes on serving everything else.

``python -m app.engines.llamacpp_check FILE.gguf [MMPROJ.gguf]`` is the child: it prints one JSON
line. With a projector it also loads it and encodes a small image, since a broken projector can
crash libmtmd just the same.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REBUILD_HINT = (
    "Rebuild the engine with the portable flags: run `make install` in the Arena checkout "
    "(README, 'CPU builds'), never a native build copied from another machine."
)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    seconds: float
    system_info: str = ""


def describe_exit(returncode: int, stderr: str, name: str) -> str:
    """Why the child failed, in one sentence a user can act on."""
    if returncode < 0:
        sig = signal.Signals(-returncode)
        what = signal.strsignal(sig) or sig.name
        return (
            f"llama.cpp crashed with {sig.name} ({what}) generating a test token from {name}: this "
            f"llama-cpp-python build does not run on this CPU. {REBUILD_HINT}"
        )
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "no output")
    return f"llama.cpp could not generate a test token from {name} (exit status {returncode}): {last}"


def child_argv(path: str, mmproj: str = "") -> list[str]:
    return [sys.executable, "-m", "app.engines.llamacpp_check", path, *([mmproj] if mmproj else [])]


async def check_gguf(
    path: str, *, timeout: float = 120.0, argv: list[str] | None = None, mmproj: str = ""
) -> CheckResult:
    """Run the child on ``path`` (and its projector); never raises for a failure of the engine,
    only reports it."""
    name = Path(path).name + (f" with the projector {Path(mmproj).name}" if mmproj else "")
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *(argv or child_argv(path, mmproj)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return CheckResult(False, f"llama.cpp did not generate a test token from {name} in {timeout:.0f} s", timeout)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        return CheckResult(False, describe_exit(proc.returncode or 0, err.decode(errors="replace"), name), seconds)
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return CheckResult(False, f"llama.cpp's test on {name} printed no report", seconds)
    return CheckResult(True, f"generated token {report['token']}", seconds, report.get("system_info", ""))


def system_info() -> str:
    """The engine build's CPU features, as llama.cpp prints them."""
    import llama_cpp

    return str(llama_cpp.llama_print_system_info().decode(errors="replace")).strip()


def _one_token(path: str, mmproj: str = "") -> int:
    """Load ``path`` and greedily generate one token after a short prompt (runs in the child);
    with ``mmproj``, after a small image that its projector encodes."""
    import llama_cpp

    from app.engines.llamacpp import LlamaWeights

    weights = LlamaWeights(path, n_ctx=1024 if mmproj else 64, n_batch=64)
    weights.load()
    slot = weights.acquire()
    if mmproj:
        _image_prompt(weights, slot, mmproj)
    else:
        tokens = weights.tokenize("The capital of France is")
        batch = (llama_cpp.llama_token * len(tokens))(*tokens)
        if llama_cpp.llama_decode(slot.ctx, llama_cpp.llama_batch_get_one(batch, len(tokens))) != 0:
            raise RuntimeError("llama_decode failed on the test prompt")
    sampler = llama_cpp.llama_sampler_init_greedy()
    try:
        return int(llama_cpp.llama_sampler_sample(sampler, slot.ctx, -1))
    finally:
        llama_cpp.llama_sampler_free(sampler)
        weights.close()


def _image_prompt(weights: Any, slot: Any, mmproj: str) -> None:
    """Load the projector and decode a prompt holding a small grey image into ``slot``."""
    import io

    from PIL import Image

    projector = weights.projector(mmproj, 1)
    png = io.BytesIO()
    Image.new("RGB", (32, 32), (128, 128, 128)).save(png, "PNG")
    media = projector.tokenize(f"{projector.marker}\nWhat is this?", [png.getvalue()])
    try:
        projector.evaluate(slot.ctx, media, weights.n_batch)
    finally:
        projector.free(media)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m app.engines.llamacpp_check FILE.gguf [MMPROJ.gguf]", file=sys.stderr)
        return 2
    token = _one_token(*argv)
    print(json.dumps({"ok": True, "token": token, "system_info": system_info()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
