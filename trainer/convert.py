"""llama.cpp's converters, from the llama-cpp-python source distribution that matches the installed
engine, and the small driver that runs them.

The PyPI ``gguf`` package has no converter, and the converter needs the gguf-py of its own
llama.cpp revision. So ``fetch()`` (``make trainer-tools``, or ``arena train converter``) has pip
download the pinned sdist once into ``~/.cache/arena/sdist/`` and extracts only the converter
scripts, their ``conversion/`` package and gguf-py (about 2 MB) into
``~/.cache/arena/converter/llama.cpp-VERSION/``. Nothing of it is committed.

The converters run in a child process (``python -m trainer.convert SCRIPT ARGS...``) with that
gguf-py first on the path. Two options are ours, passed through the environment:

- ``ARENA_VOCAB_GGUF``: copy the vocabulary from this GGUF instead of rebuilding it from the
  Hugging Face tokenizer. A base that came from a GGUF (the bundled Gemma) keeps its exact
  SentencePiece vocabulary; rebuilt from transformers' tokenizer it would turn into a BPE vocabulary
  whose pre-tokenizer the converter guesses from a hash.
- ``ARENA_TOKENIZER_PRE``: the pre-tokenizer name to write when the converter does not recognize a
  BPE tokenizer (a tokenizer trained by you, such as the tests' tiny one); ``gpt-2`` for byte-level
  BPE with GPT-2's split pattern.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import runpy
import shutil
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

from trainer.bases import cache_dir
from trainer.errors import TrainError

PACKAGE = "llama-cpp-python"
NEEDED = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/gguf/", "LICENSE")
VOCAB_KEYS = (
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.add_space_prefix",
)


def llama_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise TrainError("llama-cpp-python is not installed; run make install") from None


def converter_dir(version: str | None = None) -> Path:
    """Where the extracted converter lives: ``$ARENA_CONVERTER_DIR`` or the cache."""
    override = os.environ.get("ARENA_CONVERTER_DIR")
    if override:
        return Path(override)
    return cache_dir() / "converter" / f"llama.cpp-{version or llama_version()}"


def sdist_cache() -> Path:
    return cache_dir() / "sdist"


def fetch(version: str | None = None, *, quiet: bool = False) -> Path:
    """Download the sdist once (pip, into the cache) and extract the converter; idempotent."""
    version = version or llama_version()
    target = converter_dir(version)
    stamp = target / ".complete"
    if stamp.is_file():
        return target
    archive = sdist_cache() / f"llama_cpp_python-{version}.tar.gz"
    if not archive.is_file():
        archive.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", *(["-q"] if quiet else []), "--no-binary", ":all:"]
        cmd += ["--no-deps", "-d", str(archive.parent), f"{PACKAGE}=={version}"]
        result = subprocess.run(cmd, capture_output=quiet, text=True)
        if result.returncode != 0 or not archive.is_file():
            detail = (result.stderr or "")[-2000:] if quiet else ""
            raise TrainError(f"pip could not download the {PACKAGE} {version} sdist\n{detail}".rstrip())
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            name = member.name.removeprefix(prefix)
            if member.name.startswith(prefix) and member.isfile() and name.startswith(NEEDED):
                member.name = name
                members.append(member)
        if not any(m.name == "convert_hf_to_gguf.py" for m in members):
            raise TrainError(f"{archive}: no llama.cpp converter inside")
        tar.extractall(tmp, members=members, filter="data")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (tmp / ".complete").write_text(f"{archive.name} sha256 {digest}\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def require_converter() -> Path:
    folder = converter_dir()
    if not (folder / ".complete").is_file():
        raise TrainError(f"the llama.cpp converter is not fetched ({folder}); run: make trainer-tools")
    return folder


def _run(script: str, args: list[str], *, vocab_gguf: str = "", tokenizer_pre: str = "") -> float:
    """Run a converter script through this module's driver; returns the seconds it took."""
    folder = require_converter()
    env = {**os.environ, "ARENA_CONVERTER_DIR": str(folder), "HF_HUB_OFFLINE": "1"}
    env.pop("ARENA_VOCAB_GGUF", None)
    env.pop("ARENA_TOKENIZER_PRE", None)
    if vocab_gguf:
        env["ARENA_VOCAB_GGUF"] = vocab_gguf
    if tokenizer_pre:
        env["ARENA_TOKENIZER_PRE"] = tokenizer_pre
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "trainer.convert", script, *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise TrainError(f"{script} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return time.monotonic() - began


def convert_model(hf_dir: Path, outfile: Path, outtype: str, *, vocab_gguf: str = "", tokenizer_pre: str = "") -> float:
    """A full Hugging Face checkpoint to GGUF (f32, f16, bf16 or q8_0)."""
    args = [str(hf_dir), "--outfile", str(outfile), "--outtype", outtype]
    return _run("convert_hf_to_gguf.py", args, vocab_gguf=vocab_gguf, tokenizer_pre=tokenizer_pre)


def convert_lora(adapter_dir: Path, base_hf: Path, outfile: Path, outtype: str = "f16") -> float:
    """A peft LoRA adapter to a GGUF adapter, for llama.cpp to apply over the base GGUF."""
    args = [str(adapter_dir), "--base", str(base_hf), "--outfile", str(outfile), "--outtype", outtype]
    return _run("convert_lora_to_gguf.py", args)


def quantize(src: Path, dst: Path, kind: str = "Q4_K_M", threads: int = 0) -> float:
    """Quantize a GGUF with llama.cpp itself (``llama_model_quantize``)."""
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}", None)
    if ftype is None:
        raise TrainError(f"unknown quantization {kind!r}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or (os.cpu_count() or 1)
    began = time.monotonic()
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise TrainError(f"llama_model_quantize failed ({rc}) for {src}")
    return time.monotonic() - began


# -- the driver, run in the child process -------------------------------------------------------


def _copy_vocab(model: object, source: str) -> None:
    """``set_vocab`` replacement: the vocabulary as the source GGUF has it, then the special tokens
    and chat template from the checkpoint folder (the trained tokenizer's end of turn, template)."""
    import gguf

    reader = gguf.GGUFReader(source)
    writer = model.gguf_writer  # type: ignore[attr-defined]
    for key in VOCAB_KEYS:
        field = reader.get_field(key)
        if field is None:
            continue
        main = gguf.GGUFValueType(field.types[0])
        sub = gguf.GGUFValueType(field.types[-1]) if main == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), main, sub_type=sub)
    special = gguf.SpecialVocab(model.dir_model, load_merges=False)  # type: ignore[attr-defined]
    special.add_to_gguf(writer)


def main(argv: list[str]) -> None:
    folder = Path(os.environ["ARENA_CONVERTER_DIR"])
    script = folder / argv[0]
    sys.path[:0] = [str(folder / "gguf-py"), str(folder)]
    vocab = os.environ.get("ARENA_VOCAB_GGUF")
    pre = os.environ.get("ARENA_TOKENIZER_PRE")
    if vocab or pre:
        import conversion  # type: ignore[import-not-found]

        find = conversion.get_model_class

        def get_model_class(name: str, mmproj: bool = False) -> type:
            """The converter's class for ``name``, with our vocabulary options on top."""
            cls = find(name, mmproj)
            if mmproj:
                return cls  # type: ignore[no-any-return]
            overrides: dict[str, object] = {"model_arch": cls.model_arch}  # each class must name its own
            if vocab:
                overrides["set_vocab"] = lambda self: _copy_vocab(self, vocab)
            if pre:
                recognized = cls.get_vocab_base_pre

                def get_vocab_base_pre(self: object, tokenizer: object) -> str:
                    try:
                        return str(recognized(self, tokenizer))
                    except NotImplementedError:
                        return pre  # type: ignore[return-value]

                overrides["get_vocab_base_pre"] = get_vocab_base_pre
            return type(cls.__name__, (cls,), overrides)

        conversion.get_model_class = get_model_class
    sys.argv = [str(script), *argv[1:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
