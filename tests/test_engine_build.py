"""Issue 8: the llama.cpp engine is built to run on any x86-64 host, and checked before serving."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.engines.llamacpp import CpuBudget
from app.engines.llamacpp_check import check_gguf
from app.registry.core import Registry
from app.registry.spec import ModelSpec

ROOT = Path(__file__).resolve().parent.parent
AMX = re.compile(r"\s(tile\w*|ldtilecfg|sttilecfg|tdp\w+)\s")
CRASH = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
GEMMA = ModelSpec(id="gemma", engine="llama.cpp", weights="bundled:gemma-3-270m", context_length=256)


def _disassemble(path: Path) -> str:
    if shutil.which("objdump") is None:
        pytest.fail("objdump (binutils) is needed to inspect the engine build")
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)], capture_output=True, text=True).stdout


def _engine_libraries() -> list[Path]:
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None and spec.submodule_search_locations
    libs = sorted(Path(spec.submodule_search_locations[0]).glob("lib/libggml-cpu*.so*"))
    assert libs, "llama-cpp-python ships no libggml-cpu library"
    return libs


def test_the_amx_scan_sees_amx(tmp_path: Path) -> None:
    """The scan below is only worth something if it finds AMX where there is some."""
    if shutil.which("as") is None:
        pytest.skip("no assembler to build the positive control")
    source = tmp_path / "amx.s"
    source.write_text("tilezero %tmm0\nldtilecfg (%rax)\ntdpbssd %tmm2, %tmm1, %tmm0\nvaddps %ymm0, %ymm1, %ymm2\n")
    subprocess.run(["as", "-o", str(tmp_path / "amx.o"), str(source)], check=True)
    found = {m.group(1) for m in AMX.finditer(_disassemble(tmp_path / "amx.o"))}
    assert found == {"tilezero", "ldtilecfg", "tdpbssd"}


def test_the_engine_library_has_no_amx_instructions() -> None:
    for lib in _engine_libraries():
        text = _disassemble(lib)
        assert "vfmadd" in text or "fmla" in text, f"{lib.name} disassembled to nothing useful"
        hits = sorted({m.group(1) for m in AMX.finditer(text)})
        assert not hits, f"{lib.name} contains AMX instructions {hits}: it dies on VMs that trap AMX"


def _make_var(name: str) -> str:
    out = subprocess.run(["make", "-s", "-C", str(ROOT), f"print-{name}"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_makefile_builds_a_portable_engine() -> None:
    flags = _make_var("LLAMA_CMAKE_ARGS").split()
    assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_NATIVE=ON" not in flags
    if "x86_64" in subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout:
        for wanted in ("AVX2", "FMA", "F16C", "BMI2"):
            assert f"-DGGML_{wanted}=ON" in flags
        for unwanted in ("AVX512", "AMX_TILE", "AMX_INT8", "AMX_BF16"):
            assert f"-DGGML_{unwanted}=OFF" in flags


def test_the_installed_engine_is_the_one_the_makefile_builds() -> None:
    recorded = Path(sys.prefix) / "llama-cmake-args"
    if not recorded.is_file():
        pytest.skip("llama-cpp-python was not installed by `make install` in this environment")
    assert recorded.read_text().strip() == _make_var("LLAMA_CMAKE_ARGS")


def test_the_docker_image_builds_with_the_makefile_flags() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"RUN make (install\S*)", dockerfile)
    assert installs and all(t in ("install", "install-gpu") for t in installs)
    for line in dockerfile.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for word in ("CMAKE_ARGS", "GGML_", "LLAMA_BUILD", "LLAMA_CMAKE_ARGS"):
            assert word not in line, f"the Dockerfile overrides the engine's flags: {line!r}"


async def test_the_check_generates_a_token_from_the_bundled_model() -> None:
    result = await check_gguf(GEMMA.resolved_weights())
    assert result.ok, result.message
    assert re.match(r"generated token \d+$", result.message)
    assert "AVX2 = 1" in result.system_info or "NEON = 1" in result.system_info


async def test_a_crash_in_the_check_marks_the_model_down_and_names_the_signal() -> None:
    async def crashing(path: str):
        return await check_gguf(path, argv=CRASH)

    registry = Registry(budget=CpuBudget(2), check_gguf=crashing)
    scripted = ModelSpec(id="other", engine="scripted", script=["still here"])
    await registry.start([GEMMA, scripted])
    try:
        down = registry.get("gemma")
        assert down.state == "down" and not down.loaded
        assert "SIGILL" in down.error and "Illegal instruction" in down.error
        assert "make install" in down.error
        assert registry.get("other").loaded and registry.get("other").state == "active"
        assert registry.ready  # the rest is served
    finally:
        await registry.close()


async def test_a_passed_check_is_not_repeated_for_the_same_file() -> None:
    calls: list[str] = []

    async def counting(path: str):
        calls.append(path)
        return await check_gguf(path)

    registry = Registry(budget=CpuBudget(2), check_gguf=counting)
    await registry.start([GEMMA, GEMMA.model_copy(update={"id": "gemma-2"})])
    try:
        assert registry.get("gemma").loaded and registry.get("gemma-2").loaded
        assert len(calls) == 1
    finally:
        await registry.close()


def test_arena_doctor_reports_the_build_and_the_models(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[[models]]\nid = "gemma"\nengine = "llama.cpp"\nweights = "bundled:gemma-3-270m"\n'
        '[[models]]\nid = "broken"\nengine = "llama.cpp"\nweights = "bundled:no-such-model"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "app", "doctor", "--models", str(models), "--db", str(tmp_path / "a.db")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr  # one model cannot load
    assert re.search(r"engine build\s+.*AVX2 = 1", out) or "NEON = 1" in out, out
    assert re.search(r"^gemma\s+llama\.cpp\s+ok \(", out, re.M), out
    assert re.search(r"^broken\s+llama\.cpp\s+FAILED: ", out, re.M), out
