"""A rule engine for the eval tests: it answers from the prompt it is given, so the judge's
verdicts follow from the answers it sees, whatever order the run asks in.

As a judge it reads the template's sections and prefers the answer with more ``GOOD``; an answer
with ``BIASED`` makes it always pick Assistant A (position bias: the two orders disagree), and one
with ``GARBLE`` makes it reply without a verdict. As a model it answers by a function of the prompt.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from app.engines.base import Delta, Engine, Gate, GenerationRequest
from app.engines.llamacpp import CpuBudget
from app.eval.context import EvalContext
from app.eval.suites import Suite, parse_suite
from app.metrics import Metrics
from app.registry.core import ModelEntry, Registry
from app.registry.spec import ModelSpec
from app.store.db import Store

SECTION = re.compile(r"<\|The Start of Assistant (A|B)'s Conversation with User\|>(.*?)<\|The End of Assistant", re.S)


class RuleEngine(Engine):
    kind = "scripted"

    def __init__(self, rule: Callable[[str], str], *, delay: float = 0.0, parallel: int = 4) -> None:
        self.rule = rule
        self.delay = delay
        self.gate = Gate(parallel, 256)
        self.max_context = 1_000_000
        self.requests: list[GenerationRequest] = []
        self.prompts: list[str] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        async with self.gate.slot():
            self.requests.append(request)
            prompt = (request.messages or [])[-1].content
            self.prompts.append(prompt)
            if self.delay:
                await asyncio.sleep(self.delay)
            reply = self.rule(prompt)
            yield Delta(reply, len(prompt.split()), len(reply.split()), "stop")


def _answers(prompt: str) -> dict[str, str]:
    return {side: text for side, text in SECTION.findall(prompt)}


def judge_rule(prompt: str) -> str:
    """Pairwise: more GOOD wins (by 2 or more: strongly); single: 2 + 4 per GOOD, at most 10."""
    sections = _answers(prompt)
    if "GARBLE" in prompt:
        return "I cannot tell which is better."
    if not sections:  # a single grade
        return f"Fine. Rating: [[{min(10, 2 + 4 * prompt.count('GOOD'))}]]"
    if "BIASED" in prompt:
        return "The first one. [[A>B]]"
    diff = sections["A"].count("GOOD") - sections["B"].count("GOOD")
    label = "A>>B" if diff >= 2 else "A>B" if diff == 1 else "A=B" if diff == 0 else "B>A" if diff == -1 else "B>>A"
    return f"Verdict: [[{label}]]"


def answers_with(text: str) -> Callable[[str], str]:
    """A model that answers ``text`` (plus the prompt's own BIASED/GARBLE markers, if any)."""

    def rule(prompt: str) -> str:
        marks = [m for m in ("BIASED", "GARBLE") if m.lower() in prompt.lower()]
        return " ".join([text, *marks])

    return rule


@asynccontextmanager
async def eval_context(db: Path, engines: dict[str, Engine], **options: object) -> AsyncIterator[EvalContext]:
    registry = Registry(budget=CpuBudget(1), parallel=2, probe_interval=0)
    for model_id, engine in engines.items():
        registry.entries[model_id] = ModelEntry(ModelSpec(id=model_id, engine="scripted"), engine=engine)
    store = Store(db)
    await store.open()
    try:
        yield EvalContext(registry, store, Metrics(), **options)  # type: ignore[arg-type]
    finally:
        await store.close()


def suite(*lines: str, name: str = "t") -> Suite:
    return parse_suite("\n".join(lines), name, name)


def prompts(n: int, prefix: str = "Question") -> Suite:
    import json

    return suite(*(json.dumps({"id": f"q{i}", "turns": [f"{prefix} {i}?"]}) for i in range(n)))
