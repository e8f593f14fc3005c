"""Every model's answers to a suite's prompts, cached by (model, prompt, sampling settings).

A multi-turn prompt is answered turn by turn, each turn seeing the model's own earlier answers.
An answer is stored once it is whole, so a run started again reuses it instead of generating it.
"""

from __future__ import annotations

from typing import Any

from app.engines.base import ChatMessage
from app.eval.context import EvalContext, generate_text
from app.eval.store import StoredAnswer, Turn, answer_from_row, answer_key, save_answer
from app.eval.suites import Prompt


def sampling(ctx: EvalContext, model_id: str) -> dict[str, Any]:
    """The settings an answer is generated with (its model's defaults): part of its cache key."""
    defaults = ctx.entry(model_id).spec.defaults
    settings: dict[str, Any] = {
        "temperature": defaults.temperature,
        "top_p": defaults.top_p,
        "max_tokens": ctx.max_tokens or defaults.max_tokens,
    }
    # the newer keys only when set, so the cache keys of models without them stay as they were
    for name, off in (("top_k", 0), ("min_p", 0.0), ("repeat_penalty", 1.0)):
        if getattr(defaults, name) != off:
            settings[name] = getattr(defaults, name)
    return settings


async def cached_answer(ctx: EvalContext, key: str) -> StoredAnswer | None:
    row = await ctx.store.fetchone("SELECT * FROM eval_answers WHERE key = ?", (key,))
    return answer_from_row(row) if row is not None else None


async def get_answer(ctx: EvalContext, model_id: str, prompt: Prompt) -> tuple[StoredAnswer, bool]:
    """The model's answer to every turn of ``prompt`` and whether it came from the cache."""
    settings = sampling(ctx, model_id)
    key = answer_key(model_id, prompt.id, prompt.turns_hash, settings)
    found = await cached_answer(ctx, key)
    if found is not None:
        return found, True
    messages: list[ChatMessage] = []
    turns: list[Turn] = []
    for question in prompt.turns:
        messages.append(ChatMessage("user", question))
        out = await generate_text(
            ctx,
            model_id,
            messages,
            temperature=settings["temperature"],
            top_p=settings["top_p"],
            max_tokens=settings["max_tokens"],
            top_k=settings.get("top_k", 0),
            min_p=settings.get("min_p", 0.0),
            repeat_penalty=settings.get("repeat_penalty", 1.0),
        )
        turns.append(Turn(out.text, out.prompt_tokens, out.completion_tokens, out.seconds, out.finish_reason))
        messages.append(ChatMessage("assistant", out.text))
    answer = StoredAnswer(key, model_id, prompt.id, tuple(turns))
    await ctx.store.write(save_answer(answer, prompt.turns_hash, settings))
    return answer, False
