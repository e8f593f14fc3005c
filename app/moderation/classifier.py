"""The ``model`` check: a registered model used as a classifier, asked with an editable prompt.

The template is a text file (``--moderation-prompt``; the shipped :file:`prompt.txt` when unset)
in which ``{prompt}`` is replaced by the texts to check. It is read again whenever the file
changes, so an admin can tune it without a restart. The answer must start with the word SAFE or
UNSAFE (any case, after optional Markdown or quotes); ``UNSAFE: category`` gives the log a
reason. Any other answer is a failed check, which ``--moderation-fail-open`` decides on.

Images reach the classifier only when it is a vision model (``vision = true`` and an engine that
sees); for a text-only classifier this kind leaves images unchecked.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

from app.engines.base import ChatMessage, EngineError, GenerationRequest, Image
from app.errors import DomainError, Invalid
from app.metrics import Metrics
from app.moderation.checks import PASS, CheckFailed, Verdict
from app.registry import generate
from app.registry.core import ModelEntry, Registry

DEFAULT_PROMPT = Path(__file__).with_name("prompt.txt")
PLACEHOLDER = "{prompt}"
ANSWER = re.compile(r"^[\s*_#>`\"'\[(]*([A-Za-z]+)\b[\s*_`\"'\])]*[:.,;\-–—]?\s*(.*)", re.DOTALL)
MAX_ANSWER_TOKENS = 16


def parse_answer(answer: str) -> Verdict:
    """SAFE or UNSAFE as the answer's first word; anything else raises :class:`CheckFailed`."""
    match = ANSWER.match(answer)
    word = match.group(1).upper() if match else ""
    if word == "SAFE":
        return PASS
    if word == "UNSAFE":
        assert match is not None
        detail = " ".join(match.group(2).split())[:100]
        return Verdict(True, f"classifier: {detail}" if detail else "classifier: unsafe")
    raise CheckFailed(f"the classifier's answer does not start with SAFE or UNSAFE: {answer[:80]!r}")


class PromptTemplate:
    """The editable template, read again when its file changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path or DEFAULT_PROMPT
        self._stamp: tuple[int, int] | None = None
        self._text = ""
        self.text()  # a missing file or placeholder fails at start-up, not on the first prompt

    def text(self) -> str:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                text = self.path.read_text(encoding="utf-8")
                if PLACEHOLDER not in text:
                    raise Invalid(f"the moderation prompt {self.path} has no {PLACEHOLDER} placeholder")
                self._text, self._stamp = text, stamp
        except (OSError, UnicodeDecodeError) as exc:
            raise Invalid(f"cannot read the moderation prompt {self.path}: {exc}", param="moderation_prompt") from None
        return self._text

    def render(self, prompt: str) -> str:
        return self.text().replace(PLACEHOLDER, prompt)


def sees_images(entry: ModelEntry) -> bool:
    return bool(entry.spec.vision and entry.engine is not None and entry.engine.vision)


class ModelCheck:
    name = "model"

    def __init__(
        self, models: Registry, metrics: Metrics, model_id: str, template: PromptTemplate, timeout: float
    ) -> None:
        self.models = models
        self.metrics = metrics
        self.model_id = model_id
        self.template = template
        self.timeout = timeout

    async def check(self, texts: Sequence[str], images: Sequence[Image]) -> Verdict:
        try:
            entry = await generate.resolve(self.models, self.model_id)
            images = tuple(images) if sees_images(entry) else ()
            if not texts and not images:
                return PASS  # only images, and a classifier that cannot see them
            answer = await self._ask(self.template.render("\n\n".join(texts)), images)
        except (DomainError, EngineError) as exc:
            raise CheckFailed(f"the classifier model {self.model_id} failed: {exc}") from exc
        except TimeoutError:
            raise CheckFailed(f"the classifier model {self.model_id} took over {self.timeout:g} s") from None
        return parse_answer(answer)

    async def _ask(self, content: str, images: tuple[Image, ...]) -> str:
        request = GenerationRequest(
            request_id=f"moderation-{uuid.uuid4().hex}",
            messages=[ChatMessage("user", content, images)],
            max_tokens=MAX_ANSWER_TOKENS,
            max_tokens_explicit=False,
            temperature=0.0,
            top_p=1.0,
        )
        async with asyncio.timeout(self.timeout):
            started = await generate.start(self.models, self.metrics, self.model_id, request)
            parts, delta = [started.first.text], started.first
            try:
                while delta.finish_reason is None:
                    delta = await anext(started.rest)
                    parts.append(delta.text)
            finally:
                await started.rest.aclose()
        return "".join(parts)

    async def close(self) -> None:
        pass
