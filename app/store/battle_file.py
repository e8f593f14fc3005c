"""Reading clean-battle files fast: msgspec decodes only the fields a command needs.

A JSONL file is decoded in blocks of lines, a JSON array in one pass. Rows are validated by
their type (a winner outside the four labels, a missing model...); when a block fails, that
block is read again row by row, so each bad row is reported with its line number and the good
ones still count. Model names become integer codes as they are read, so what is kept per
battle is a few small integers, never the parsed row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from app.rating.cells import WINNER_CODES

Winner = Literal["model_a", "model_b", "tie", "tie (bothbad)"]
BLOCK_BYTES = 32 << 20


class Message(msgspec.Struct):
    role: str
    content: str


class LeanRow(msgspec.Struct):
    """What the overall board needs."""

    model_a: str
    model_b: str
    winner: Winner
    anony: bool = True


class FullRow(msgspec.Struct):
    """What categories and vote-level options need too."""

    model_a: str
    model_b: str
    winner: Winner
    anony: bool = True
    language: str | None = None
    turn: int = 1
    judge: str | None = None
    conversation_a: list[Message] | None = None

    def first_prompt(self) -> str:
        return next((m.content for m in self.conversation_a or [] if m.role == "user"), "")


@dataclass
class Problems:
    """Bad rows: (line number, reason); line numbers are element numbers for a JSON array."""

    bad: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Columns:
    """Battles as integer codes: model names once, then per battle (a, b, winner)."""

    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    parts: list[np.ndarray] = field(default_factory=list)

    def codes(self, names: list[str]) -> np.ndarray:
        """Integer code per name, new names numbered as they come."""
        index = self.index
        for name in set(names).difference(index):
            index[name] = len(self.names)
            self.names.append(name)
        return np.fromiter(map(index.__getitem__, names), np.int64, len(names))

    def add(self, rows: list[Any]) -> None:
        a = self.codes([r.model_a for r in rows])
        b = self.codes([r.model_b for r in rows])
        w = np.fromiter(map(WINNER_CODES.__getitem__, [r.winner for r in rows]), np.int64, len(rows))
        self.parts.append(np.stack([a, b, w], axis=1))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(model_a codes, model_b codes, winner codes)."""
        both = np.concatenate(self.parts) if self.parts else np.zeros((0, 3), dtype=np.int64)
        return both[:, 0], both[:, 1], both[:, 2].astype(np.int8)


def _row_problem(row: Any) -> str | None:
    if row.model_a == row.model_b:
        return f"a model against itself ({row.model_a})"
    if not row.model_a or not row.model_b:
        return "model names must be non-empty"
    return None


def _one_by_one(lines: list[bytes], first: int, kind: type, problems: Problems) -> list[Any]:
    """Decode and check each line on its own, reporting bad ones by line number."""
    out = []
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(kind)
    for number, line in enumerate(lines, start=first):
        if not line.strip():
            continue
        try:
            row = decoder.decode(line)
        except msgspec.ValidationError as exc:
            problems.bad.append((number, _validation_message(exc)))
            continue
        except msgspec.DecodeError as exc:
            problems.bad.append((number, f"not valid JSON ({exc})"))
            continue
        why = _row_problem(row)
        if why is None:
            out.append(row)
        else:
            problems.bad.append((number, why))
    return out


def _validation_message(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    if text.startswith("Object missing required field"):
        return f"missing field '{text.split('`')[1]}'"
    if "Invalid enum value" in text:
        return f"unknown winner {text.split('Invalid enum value ', 1)[1].split(' ', 1)[0]}"
    return text


def _jsonl_blocks(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(first line number, block of whole lines) of about BLOCK_BYTES each."""
    start, line = 0, 1
    while start < len(data):
        end = data.find(b"\n", min(len(data), start + BLOCK_BYTES))
        end = len(data) if end < 0 else end + 1
        block = data[start:end]
        yield line, block
        line += block.count(b"\n")
        start = end


def read_battles(path: Path, kind: type, problems: Problems) -> Iterator[list[Any]]:
    """Blocks of decoded, checked rows of ``kind`` (:class:`LeanRow` or :class:`FullRow`)."""
    data = path.read_bytes()
    if data.lstrip()[:1] == b"[":
        try:
            rows = msgspec.json.decode(data, type=list[kind])  # type: ignore[valid-type]
        except msgspec.ValidationError:
            items = msgspec.json.decode(data, type=list[msgspec.Raw])
            yield _one_by_one([bytes(item) for item in items], 1, kind, problems)
            return
        except msgspec.DecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
        yield _checked(rows, 1, problems)
        return
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(kind)
    for first, block in _jsonl_blocks(data):
        try:
            rows = decoder.decode_lines(block)
        except (msgspec.ValidationError, msgspec.DecodeError):
            yield _one_by_one(block.split(b"\n"), first, kind, problems)
            continue
        yield _checked(rows, first, problems)


def _checked(rows: list[Any], first: int, problems: Problems) -> list[Any]:
    """Drop (and report) rows a type cannot rule out: a model against itself, empty names."""
    out = []
    for k, row in enumerate(rows):
        why = _row_problem(row)
        if why is None:
            out.append(row)
        else:
            problems.bad.append((first + k, why))
    return out
