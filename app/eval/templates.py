"""The judge's prompt templates: plain text files users may edit or replace.

``pairwise.txt`` shows two conversations as Assistant A and Assistant B; ``single.txt`` and
``single_ref.txt`` (with reference answers) show one. Placeholders are ``{conversation_a}``,
``{conversation_b}``, ``{conversation}`` and ``{reference}``; they are filled in one pass, so text
inside an answer is never read as a placeholder. A template's sha256 is stored with every verdict
made with it, so an edited template never reuses verdicts cached under the old text.

Model names never reach a template: conversations label the speakers "User" and "Assistant A/B".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

NAMES = ("pairwise", "single", "single_ref")
_PLACEHOLDER = re.compile(r"\{(conversation_a|conversation_b|conversation|reference)\}")
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding", "code"})  # graded against a reference


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Template:
    name: str
    text: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def render(self, **values: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values.get(m[1], ""), self.text)


def load_template(name: str, folder: Path | None = None) -> Template:
    """``name``.txt from ``folder`` when it has one, else the package's own."""
    if name not in NAMES:
        raise TemplateError(f"unknown judge template {name!r}; one of {', '.join(NAMES)}")
    if folder is not None and (folder / f"{name}.txt").is_file():
        path = folder / f"{name}.txt"
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        text = resources.files("app.eval").joinpath("templates", f"{name}.txt").read_text(encoding="utf-8")
        source = f"bundled:{name}"
    needed = {"pairwise": ("{conversation_a}", "{conversation_b}")}.get(name, ("{conversation}",))
    missing = [p for p in needed if p not in text]
    if missing:
        raise TemplateError(f"judge template {source} lacks {', '.join(missing)}")
    return Template(name, text, source)


def conversation(turns: Sequence[str], answers: Sequence[str], speaker: str = "Assistant") -> str:
    """A transcript the judge reads: the user's turns and one assistant's answers, no model names."""
    parts = []
    for question, answer in zip(turns, answers, strict=False):
        parts.append(f"### User:\n{question}\n\n### {speaker}:\n{answer}")
    return "\n\n".join(parts)


def reference_block(reference: Sequence[str], pairwise: bool) -> str:
    if not reference:
        return ""
    text = "\n\n".join(f"### Reference answer to turn {i}:\n{r}" for i, r in enumerate(reference, start=1))
    if len(reference) == 1:
        text = f"### Reference answer:\n{reference[0]}"
    return (
        f"<|The Start of the Reference Answers|>\n{text}\n<|The End of the Reference Answers|>\n\n"
        if pairwise
        else text
    )


def render_pairwise(
    template: Template,
    turns: Sequence[str],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    reference: Sequence[str] = (),
) -> str:
    return template.render(
        conversation_a=conversation(turns, answers_a, "Assistant A"),
        conversation_b=conversation(turns, answers_b, "Assistant B"),
        reference=reference_block(reference, pairwise=True),
    )


def render_single(
    template: Template, turns: Sequence[str], answers: Sequence[str], reference: Sequence[str] = ()
) -> str:
    return template.render(
        conversation=conversation(turns, answers), reference=reference_block(reference, pairwise=False)
    )


def uses_reference(category: str, reference: Sequence[str]) -> bool:
    """MT-bench grades math, reasoning and coding answers against a reference, when there is one."""
    return bool(reference) and category.lower() in REFERENCE_CATEGORIES
