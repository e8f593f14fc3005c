"""``arena doctor``: is the llama.cpp engine built for this CPU, and which models load?

Everything that could crash runs in a child process, so the report always prints.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
from pathlib import Path

from app.cli.common import CommandError, print_table, settings_from
from app.engines.llamacpp_check import check_gguf, describe_exit
from app.registry.factory import resolve_kind
from app.registry.spec import ModelsFileError

FLAGS = ["models", "db"]
CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")
BUILD_FLAGS_FILE = Path(sys.prefix) / "llama-cmake-args"  # written by `make install`


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.partition(":")[2].split())
    return " ".join(f for f in CPU_FLAGS if f in have) or "none of " + " ".join(CPU_FLAGS)


def build_flags() -> str:
    if BUILD_FLAGS_FILE.is_file():
        return BUILD_FLAGS_FILE.read_text().strip()
    return "unknown (llama-cpp-python was not installed by `make install`)"


def engine_info() -> str:
    """llama.cpp's own list of the CPU features it was built with, read in a child process."""
    code = "from app.engines.llamacpp_check import system_info; print(system_info())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return describe_exit(proc.returncode, proc.stderr, "the engine library")
    return proc.stdout.strip()


def run(args: object) -> int:
    settings = settings_from(args, FLAGS)  # type: ignore[arg-type]
    from app.cli.models import merged_specs

    try:
        specs = merged_specs(settings)
    except ModelsFileError as exc:
        raise CommandError(str(exc)) from None
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    print(f"python             {sys.version.split()[0]}")
    print(f"llama-cpp-python   {version}")
    print(f"build flags        {build_flags()}")
    print(f"this CPU           {cpu_flags()}")
    print(f"engine build       {engine_info()}")
    print()
    rows, failed, checked = [["model", "engine", "check"]], 0, {}
    for spec in specs:
        kind = resolve_kind(spec)
        if kind != "llama.cpp":
            rows.append([spec.id, kind, "not checked (only GGUF models are)"])
            continue
        try:
            path = spec.resolved_weights()
        except (ValueError, ImportError) as exc:
            rows.append([spec.id, kind, f"FAILED: {exc}"])
            failed += 1
            continue
        if path not in checked:
            checked[path] = asyncio.run(check_gguf(path))
        result = checked[path]
        failed += not result.ok
        verdict = f"ok ({result.seconds:.1f} s)" if result.ok else f"FAILED: {result.message}"
        rows.append([spec.id, kind, verdict])
    print_table(rows)
    return 1 if failed else 0
