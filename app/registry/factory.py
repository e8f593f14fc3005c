"""Building engines from model specs: ``auto`` resolution, weight checks, memory estimates, and
one set of llama.cpp weights shared by every entry on the same GGUF file."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from app.engines.base import Engine, EngineError
from app.engines.chat_template import format_for
from app.engines.llamacpp import CpuBudget, LlamaCppEngine, LlamaWeights
from app.engines.llamacpp_check import CheckResult
from app.engines.scripted import ScriptedEngine
from app.errors import Invalid
from app.registry.spec import BUNDLED_PREFIX, ModelSpec, check_remote_host

GGUF_MAGIC = b"GGUF"
MB = 1024 * 1024


class WeightsError(ValueError):
    """Weights that are missing, not a model, or outside the allowed folders."""


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def check_weights(spec: ModelSpec, allowed_dirs: list[Path] | None) -> None:
    """Refuse weights that don't exist, aren't a model, or lie outside ``allowed_dirs``."""
    if spec.lora:
        check_lora(spec, allowed_dirs)
    if spec.mmproj or (spec.vision and resolve_kind(spec) == "llama.cpp"):
        check_mmproj(spec, allowed_dirs)
    if spec.engine in ("remote", "scripted") or spec.weights.startswith(BUNDLED_PREFIX):
        return
    if not spec.weights:
        raise WeightsError(f"model {spec.id!r} needs a weights path")
    path = Path(spec.weights).resolve()
    if allowed_dirs is not None:
        roots = [d.resolve() for d in allowed_dirs]
        if not any(path == r or r in path.parents for r in roots):
            folders = ", ".join(str(r) for r in roots) or "(none configured: set --model-dir)"
            raise WeightsError(f"weights {spec.weights!r} lie outside the model folders: {folders}")
    if not path.exists():
        raise WeightsError(f"weights {spec.weights!r} do not exist")
    if not (is_gguf(path) or is_hf_folder(path)):
        raise WeightsError(
            f"weights {spec.weights!r} are not a model (expected a .gguf file or a folder with "
            "config.json and *.safetensors)"
        )


def check_lora(spec: ModelSpec, allowed_dirs: list[Path] | None) -> None:
    """A LoRA adapter: a GGUF file inside the model folders, applied by the llama.cpp engine."""
    if resolve_kind(spec) != "llama.cpp":
        raise WeightsError(f"model {spec.id!r}: lora needs the llama.cpp engine over GGUF weights")
    path = Path(spec.lora).resolve()
    roots = [d.resolve() for d in allowed_dirs or []]
    if allowed_dirs is not None and not any(path == r or r in path.parents for r in roots):
        raise WeightsError(f"lora {spec.lora!r} lies outside the model folders")
    if not is_gguf(path):
        raise WeightsError(f"lora {spec.lora!r} is not a GGUF file")


def check_mmproj(spec: ModelSpec, allowed_dirs: list[Path] | None) -> None:
    """A llama.cpp vision model's projector: a GGUF file (inside the model folders) that exists."""
    if resolve_kind(spec) != "llama.cpp":
        raise WeightsError(f"model {spec.id!r}: mmproj needs the llama.cpp engine over GGUF weights")
    if not spec.mmproj:
        raise WeightsError(
            f"model {spec.id!r}: vision = true on llama.cpp needs mmproj, the projector GGUF that comes with the model"
        )
    path = Path(spec.mmproj).resolve()
    roots = [d.resolve() for d in allowed_dirs or []]
    if allowed_dirs is not None and not any(path == r or r in path.parents for r in roots):
        raise WeightsError(f"mmproj {spec.mmproj!r} lies outside the model folders")
    if not path.is_file():
        raise WeightsError(f"model {spec.id!r}: the projector file (mmproj) {spec.mmproj} does not exist")
    if not is_gguf(path):
        raise WeightsError(f"model {spec.id!r}: the projector file (mmproj) {spec.mmproj} is not a GGUF file")


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_kind(spec: ModelSpec) -> str:
    """The engine ``auto`` stands for: llama.cpp for GGUF, vLLM for HF weights with CUDA and
    vllm installed, transformers otherwise."""
    if spec.engine != "auto":
        return spec.engine
    weights = spec.weights
    if weights.startswith(BUNDLED_PREFIX) or weights.endswith(".gguf") or is_gguf(Path(weights)):
        return "llama.cpp"
    if importlib.util.find_spec("vllm") is not None and cuda_available():
        return "vllm"
    return "transformers"


def estimate_memory(spec: ModelSpec, path: str, parallel: int) -> int:
    """Bytes of RAM a model will take: weights plus its contexts (a rough, safe estimate)."""
    kind = resolve_kind(spec)
    if kind in ("remote", "scripted", "vllm"):  # vLLM lives on the GPU and sizes itself
        return 0
    p = Path(path)
    size = p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.glob("*.safetensors"))
    if kind == "llama.cpp":
        return int(size * 1.1) + parallel * 160 * MB
    return size * 2 + 256 * MB  # transformers on CPU upcasts 16-bit weights to float32


GPU_MEMORY_UTILIZATION = 0.85


def gpu_shortfall(spec: ModelSpec) -> str | None:
    """Why a vLLM model will not fit in the GPU's free memory now, or None when it fits."""
    if resolve_kind(spec) != "vllm" or not cuda_available():
        return None
    import torch

    free, total = torch.cuda.mem_get_info()
    wanted = GPU_MEMORY_UTILIZATION * total
    if wanted <= free:
        return None
    return (
        f"not enough GPU memory to load {spec.id}: vLLM reserves {wanted / 2**30:.1f} GiB "
        f"({GPU_MEMORY_UTILIZATION:.0%} of the card) and {free / 2**30:.1f} GiB are free"
    )


GgufCheck = Callable[..., Awaitable[CheckResult]]  # (path, *, mmproj="") -> result


class EngineFactory:
    def __init__(
        self,
        budget: CpuBudget,
        *,
        parallel: int,
        max_queue: int,
        check_gguf: GgufCheck | None = None,
        remote_hosts: Collection[str] | None = None,
    ) -> None:
        self.budget = budget
        self.remote_hosts = remote_hosts  # hosts remote models may use; None: any (see check_remote_host)
        self.parallel = parallel
        self.max_queue = max_queue
        self.check_gguf = check_gguf
        self.checks: dict[str, CheckResult] = {}  # GGUF path (+ "|" + mmproj) -> its passed start-up check
        self._weights: dict[str, LlamaWeights] = {}
        self.env_prefix = "ARENA_REMOTE_"  # remote api_key_env must start with it (--remote-env-prefix)

    async def build(self, spec: ModelSpec, path: str, n_ctx: int) -> Engine:
        kind = resolve_kind(spec)
        if kind == "scripted":
            return ScriptedEngine(spec.script or None, max_context=spec.context_length, vision=spec.vision)
        if kind == "llama.cpp":
            return await self._llamacpp(spec, path, n_ctx)
        if kind == "transformers":
            from app.engines.transformers import TransformersEngine

            engine = TransformersEngine(path, max_context=spec.context_length, max_queue=self.max_queue)
            await asyncio.to_thread(engine.load)
            return engine
        if kind == "vllm":
            from app.engines.vllm import VLLMEngine

            vllm = VLLMEngine(
                path,
                max_model_len=spec.context_length,
                gpu_memory_utilization=GPU_MEMORY_UTILIZATION,
                max_queue=self.max_queue,
            )
            await vllm.start()
            return vllm
        if kind == "remote":
            from app.engines.remote import RemoteEngine

            if not spec.base_url or not spec.remote_model:
                raise EngineError(f"remote model {spec.id!r} needs base_url and remote_model")
            remote = RemoteEngine(
                spec.base_url,
                spec.remote_model,
                api_key_env=spec.api_key_env or None,
                max_context=spec.context_length,
                env_prefix=self.env_prefix,
                parallel=self.parallel,
                max_queue=self.max_queue,
            )
            try:
                check_remote_host(spec, self.remote_hosts)  # before anything is fetched
                await remote.check()
            except Invalid as exc:
                await remote.close()
                raise EngineError(exc.message) from None
            except Exception:
                await remote.close()
                raise
            return remote
        raise EngineError(f"unknown engine {kind!r}")

    async def _llamacpp(self, spec: ModelSpec, path: str, n_ctx: int) -> Engine:
        if spec.mmproj or spec.vision:  # a missing projector is refused before the weights load
            try:
                check_mmproj(spec, None)
            except WeightsError as exc:
                raise EngineError(str(exc)) from None
        weights = self._weights.get(path)
        fresh = weights is None
        if weights is None:
            await self._check(path)
            weights = LlamaWeights(path, n_ctx=n_ctx)
            await asyncio.to_thread(weights.load)
            self._weights[path] = weights
        try:
            # before any projector loads: "auto" checks the file's own template (ChatTemplateError)
            turns = format_for(spec.chat_format, weights.chat, weights.special_pieces)
        except Exception:
            if fresh:  # loaded for this entry alone: not kept for a model that cannot serve
                weights.close()
                del self._weights[path]
            raise
        projector = None
        if spec.mmproj:  # a projector that would crash libmtmd crashes the child, not us
            await self._check(path, spec.mmproj)
            projector = await asyncio.to_thread(weights.projector, spec.mmproj, self.budget.cores)
        engine = LlamaCppEngine(
            weights,
            self.budget,
            chat_format=turns,
            parallel=self.parallel,
            max_queue=self.max_queue,
            lora=spec.lora,
            projector=projector,
        )
        engine.max_context = min(spec.context_length, weights.n_ctx)
        return engine

    async def _check(self, path: str, mmproj: str = "") -> None:
        """Generate one token from ``path`` (after an image, with ``mmproj``) in a child process
        before this process touches them."""
        key = f"{path}|{mmproj}" if mmproj else path
        if self.check_gguf is None or key in self.checks:
            return
        result = await (self.check_gguf(path, mmproj=mmproj) if mmproj else self.check_gguf(path))
        if not result.ok:
            raise EngineError(result.message)
        self.checks[key] = result

    def shares_weights(self, path: str) -> bool:
        return path in self._weights

    def release_unused(self, engines: list[Engine]) -> None:
        used = {id(e.weights) for e in engines if isinstance(e, LlamaCppEngine)}
        for path, weights in list(self._weights.items()):
            if id(weights) not in used:
                weights.close()
                del self._weights[path]

    def close(self) -> None:
        for weights in self._weights.values():
            weights.close()
        self._weights.clear()


def memory_total() -> int:
    """Physical RAM in bytes (from /proc/meminfo; a large default where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 * 1024 * MB
