"""Prompt suites: JSONL files, one prompt a line.

A line is ``{"id" | "question_id", "turns": [str, ...] | "prompt": str, "category"?, "reference"?}``;
``reference`` is a string or one string per turn. MT-bench's ``question.jsonl`` reads as is. A
suite is named by its file's stem; names resolve to a file path, then the suites folder, then the
suites shipped with the package (``demo``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

MAX_TURNS = 8
MAX_PROMPTS = 100_000


class SuiteError(ValueError):
    """A suite that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Prompt:
    id: str
    turns: tuple[str, ...]
    category: str = ""
    reference: tuple[str, ...] = ()  # one per turn, or empty

    @property
    def turns_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.turns, ensure_ascii=False).encode()).hexdigest()[:16]

    @property
    def prompt_hash(self) -> str:
        """The turns, category and reference: what a judge's verdict depends on (an answer only on the turns)."""
        data = [self.turns, self.category, self.reference]
        return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Suite:
    name: str
    prompts: tuple[Prompt, ...]
    source: str  # where it was read from


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise ValueError(f"{what} must be a non-empty string or a list of non-empty strings")
    return tuple(value)


def parse_line(data: Any) -> Prompt:
    """One suite line as a :class:`Prompt`, or ValueError saying what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError("a line must be a JSON object")
    pid = data.get("id", data.get("question_id"))
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or str(pid).strip() == "":
        raise ValueError("needs an id (or question_id): a string or a number")
    if "turns" in data and "prompt" in data:
        raise ValueError("has both turns and prompt; give one")
    turns = _strings(data.get("turns", data.get("prompt")), "turns (or prompt)")
    if len(turns) > MAX_TURNS:
        raise ValueError(f"has {len(turns)} turns; at most {MAX_TURNS}")
    category = data.get("category") or ""
    if not isinstance(category, str):
        raise ValueError("category must be a string")
    reference: tuple[str, ...] = ()
    if data.get("reference") not in (None, "", []):
        reference = _strings(data["reference"], "reference")
    return Prompt(str(pid), turns, category, reference)


SUITE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def check_name(name: str, source: str) -> str:
    """``name`` when it is a usable suite name (it becomes a file name and the votes' ``suite:NAME``
    category), else SuiteError saying which characters are allowed."""
    if not SUITE_NAME.fullmatch(name):
        raise SuiteError(
            f"{source}: bad suite name {name!r}: use 1 to 100 letters, digits, '.', '_' or '-'"
            " (no spaces), not starting with '.'"
        )
    return name


def parse_suite(text: str, name: str, source: str) -> Suite:
    """Every line checked; all problems reported at once, each with its line number."""
    check_name(name, source)
    prompts: list[Prompt] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompt = parse_line(json.loads(line))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            problems.append(f"{source}:{number}: {exc}")
            continue
        if prompt.id in seen:
            problems.append(f"{source}:{number}: duplicate id {prompt.id!r} (first on line {seen[prompt.id]})")
            continue
        seen[prompt.id] = number
        prompts.append(prompt)
    if not prompts and not problems:
        problems.append(f"{source}: no prompts")
    if len(prompts) > MAX_PROMPTS:
        problems.append(f"{source}: {len(prompts)} prompts; at most {MAX_PROMPTS}")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise SuiteError("\n".join(shown))
    return Suite(name, tuple(prompts), source)


def read_suite(path: Path) -> Suite:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"cannot read suite {path}: {exc}") from None
    return parse_suite(text, path.stem, str(path))


def bundled() -> dict[str, str]:
    """Suites shipped with the package: name -> JSONL text."""
    folder = resources.files("app.eval").joinpath("suites")
    return {
        p.name.removesuffix(".jsonl"): p.read_text(encoding="utf-8")
        for p in folder.iterdir()
        if p.name.endswith(".jsonl")
    }


def available(folder: Path) -> dict[str, str]:
    """Suite name -> where it lives: the suites folder's files, then the bundled ones."""
    found = {name: f"bundled:{name}" for name in sorted(bundled())}
    if folder.is_dir():
        found.update({p.stem: str(p) for p in sorted(folder.glob("*.jsonl"))})
    return found


def load_suite(name_or_path: str | Path, folder: Path) -> Suite:
    """A suite by file path, by name in ``folder``, or by a bundled name."""
    path = Path(name_or_path)
    if path.suffix == ".jsonl" or path.exists():
        return read_suite(path)
    name = str(name_or_path).removeprefix("bundled:")
    local = folder / f"{name}.jsonl"
    if local.exists() and not str(name_or_path).startswith("bundled:"):
        return read_suite(local)
    texts = bundled()
    if name in texts:
        return parse_suite(texts[name], name, f"bundled:{name}")
    known = ", ".join(available(folder)) or "none"
    raise SuiteError(f"no suite {str(name_or_path)!r} (a .jsonl file, or one of: {known})")


def import_suite(path: Path, folder: Path, name: str | None = None) -> Suite:
    """Check a suite file and copy it into ``folder`` as NAME.jsonl (its stem by default)."""
    suite = read_suite(path)
    name = check_name(name or path.stem, str(path))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.jsonl"
    shutil.copyfile(path, target)
    return Suite(name, suite.prompts, str(target))
