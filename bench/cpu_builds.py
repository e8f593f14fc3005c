"""llama.cpp build variants on the bundled Gemma, measured in one run through `arena serve`'s /v1.

Each variant is a wheel built by `make llama-wheel LLAMA_CMAKE_ARGS=...` into its own folder of
~/.cache/arena/wheels (with its build time). Each is installed into a scratch folder, and one
`arena serve` per variant runs with that folder first on PYTHONPATH. Rounds alternate between the
variants so that machine noise hits all alike. A variant that does not run on this CPU shows the
start-up check's message instead of numbers. The anchor is the portable build (what `make
install` ships). The start-up check's cost is timed as `arena serve` start to /ready, with
`--check-engines` true against false.

    python bench/cpu_builds.py [--build] [--variants portable,native,avx512,all-variants] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import PROMPTS, ROOT, Run, free_port, stream_http  # noqa: E402

AVX512 = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON "
    "-DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF "
    "-DGGML_AMX_BF16=OFF"
)
VARIANTS = {
    "portable": None,  # the Makefile's own flags
    "native": "-DGGML_NATIVE=ON",
    "avx512": AVX512,
    "all-variants": "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON",
}
MODEL = "gemma-3-270m-greedy"


def make(*args: str) -> str:
    return subprocess.run(["make", "-s", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def wheelhouse(flags: str | None, build: bool) -> Path | None:
    extra = [] if flags is None else [f"LLAMA_CMAKE_ARGS={flags}"]
    folder = Path(make("print-LLAMA_WHEELHOUSE", *extra).strip())
    if not folder.is_dir() and build:
        subprocess.run(["make", "-C", str(ROOT), "llama-wheel", *extra], check=True)
    return folder if folder.is_dir() else None


def install(folder: Path, scratch: Path) -> Path:
    target = scratch / folder.name
    wheel = next(folder.glob("llama_cpp_python-*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(pip, check=True)
    return target


def start(
    site: Path | None, port: int, db: Path, check: bool = True, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    if site is not None:
        env["PYTHONPATH"] = f"{site}:{ROOT}"
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(port), "--db", str(db), "--check-engines", str(check)]
    began = time.perf_counter()
    err = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    while proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc, time.perf_counter() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"arena serve exited with {proc.returncode}")


def model_error(port: int, log: Path) -> str | None:
    """None when the model is up, else why: the start-up check's message from the server's log."""
    models = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).json()["models"]
    if models.get(MODEL, {}).get("state") == "active":
        return None
    lines = [line for line in log.read_text(errors="replace").splitlines() if "rror" in line or "SIG" in line]
    return "model down: " + (lines[-1][-160:] if lines else "see `arena doctor`")


def startup_cost(scratch: Path, rounds: int) -> tuple[float, float]:
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(rounds):
        for check in (True, False):
            proc, took = start(None, free_port(), scratch / f"ready-{check}-{i}.db", check)
            proc.terminate()
            proc.wait(10)
            times[check].append(took)
    return statistics.median(times[True]), statistics.median(times[False])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="portable,native,avx512,all-variants")
    parser.add_argument("--build", action="store_true", help="build the wheels that are missing (slow)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    names = args.variants.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="cpu-builds-"))
    rows: dict[str, dict[str, str]] = {}
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name in names:
            folder = wheelhouse(VARIANTS[name], args.build)
            if folder is None:
                rows[name] = {"note": "not built (run with --build)"}
                continue
            build_time = (folder / "BUILD_TIME").read_text().strip() if (folder / "BUILD_TIME").exists() else "?"
            rows[name] = {"build": build_time, "flags": (folder / "CMAKE_ARGS").read_text().strip()}
            port = free_port()
            log = scratch / f"{name}.log"
            proc, _ = start(install(folder, scratch), port, scratch / f"{name}.db", log=log)
            error = model_error(port, log)
            if error:
                rows[name]["note"] = error
                proc.terminate()
                continue
            servers[name] = (proc, port)
            stream_http(f"http://127.0.0.1:{port}", MODEL, "Hello", 8)  # warm-up
        runs: dict[str, list[Run]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for prompt in PROMPTS:
                for name, (_, port) in servers.items():
                    runs[name].append(stream_http(f"http://127.0.0.1:{port}", MODEL, prompt, args.max_tokens))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
    for name in servers:
        rows[name]["rate"] = f"{statistics.median(r.rate for r in runs[name]):.1f}"
        rows[name]["ttft"] = f"{statistics.median(r.ttft for r in runs[name]) * 1000:.1f}"
    anchor = float(rows.get("portable", {}).get("rate", "nan"))
    print(
        f"\nbench/cpu_builds.py  /v1 stream, gemma-3-270m Q4_K_M, greedy, max_tokens={args.max_tokens}, "
        f"{args.rounds}x{len(PROMPTS)} prompts, {len(os.sched_getaffinity(0))} cores\n"
    )
    print(f"{'variant':<14}{'tok/s':>8}{'x portable':>12}{'TTFT ms':>10}  {'build time':<20}note")
    for name in names:
        row = rows[name]
        ratio = f"{float(row['rate']) / anchor:.3f}" if "rate" in row else "-"
        print(
            f"{name:<14}{row.get('rate', '-'):>8}{ratio:>12}{row.get('ttft', '-'):>10}  "
            f"{row.get('build', '-'):<20}{row.get('note', '')}"
        )
    with_check, without = startup_cost(scratch, args.rounds)
    print(
        f"\nstart to /ready: {with_check:.2f} s with the engine check, {without:.2f} s without "
        f"(+{with_check - without:.2f} s, median of {args.rounds})"
    )


if __name__ == "__main__":
    main()
