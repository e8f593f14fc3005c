"""Turn formats for GGUF files that carry no chat template of their own.

Each format renders a list of messages into one prompt string that ends where the model's
answer begins, and names the stop strings that close a turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.engines.base import ChatMessage


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    stop: tuple[str, ...] = ()


def _system_and_turns(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """Split leading system/developer messages from the conversation turns."""
    system: list[str] = []
    turns: list[ChatMessage] = []
    for message in messages:
        if message.role in ("system", "developer"):
            system.append(message.content)
        else:
            turns.append(message)
    return "\n\n".join(system), turns


def gemma(messages: Sequence[ChatMessage]) -> Prompt:
    """Gemma's turn format. Gemma has no system role: the system text opens the first user turn."""
    system, turns = _system_and_turns(messages)
    parts: list[str] = []
    for index, message in enumerate(turns):
        role = "model" if message.role == "assistant" else "user"
        content = message.content
        if index == 0 and system:
            content = f"{system}\n\n{content}"
        parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    if not turns and system:
        parts.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return Prompt("".join(parts), ("<end_of_turn>", "<start_of_turn>"))


def chatml(messages: Sequence[ChatMessage]) -> Prompt:
    system, turns = _system_and_turns(messages)
    parts = [f"<|im_start|>system\n{system}<|im_end|>\n"] if system else []
    parts += [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in turns]
    parts.append("<|im_start|>assistant\n")
    return Prompt("".join(parts), ("<|im_end|>",))


def llama3(messages: Sequence[ChatMessage]) -> Prompt:
    system, turns = _system_and_turns(messages)
    parts: list[str] = []
    if system:
        parts.append(f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>")
    parts += [f"<|start_header_id|>{m.role}<|end_header_id|>\n\n{m.content}<|eot_id|>" for m in turns]
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return Prompt("".join(parts), ("<|eot_id|>",))


def plain(messages: Sequence[ChatMessage]) -> Prompt:
    """A last resort for base models: 'Role: text' lines."""
    lines = [f"{m.role.capitalize()}: {m.content}" for m in messages]
    lines.append("Assistant:")
    return Prompt("\n".join(lines), ("\nUser:",))


FORMATS: dict[str, Callable[[Sequence[ChatMessage]], Prompt]] = {
    "gemma": gemma,
    "chatml": chatml,
    "llama-3": llama3,
    "plain": plain,
}
