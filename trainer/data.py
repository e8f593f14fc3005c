"""Training data: read and check conversations and preference pairs, and tokenize them with
labels on the assistant's tokens only.

Formats read:
- ShareGPT JSON, FastChat's format: ``[{"id": ..., "conversations": [{"from": "human", "value": ...}]}]``
  (a ``.json`` array, or one record per line in ``.jsonl``);
- OpenAI ``messages`` JSONL: one ``{"messages": [{"role": ..., "content": ...}]}`` per line;
- preference JSONL: one ``{"prompt", "chosen", "rejected"}`` per line, where ``prompt`` is a string
  or a list of messages ending with the user's turn, and ``chosen``/``rejected`` are strings (or a
  one-message assistant list, trl's conversational form). Other keys are kept as metadata.

Every problem names where it is (``file line N`` or ``file record N``) and the field. Contents are
stripped of surrounding whitespace: a trailing newline in an answer would teach the model to emit
one before ending its turn.

Masking derives each assistant turn's tokens from the chat template itself: the tokens of the
prompt before the turn (rendered with the generation prompt, as at serving time) and of the
conversation up to the end of the turn must both be exact prefixes of the whole conversation's
tokens, and the labelled tokens are the ones in between (the answer and the template's end-of-turn
marker). A sample where that fails is reported with the reason, never trained with a zeroed or
shifted mask (FastChat's masking silently zeroes the loss when the tokenizer doesn't match).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from trainer.errors import TrainError

IGNORE = -100  # label of tokens that carry no loss
BUNDLED_DATA = {"chat-seed": "chat_seed.jsonl"}
ROLES = ("system", "developer", "user", "assistant")
# FastChat's ShareGPT speakers, mapped to roles.
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
}
MAX_PROBLEMS = 20  # problems listed in one error


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    where: str  # "file line 3": for reports


@dataclass(frozen=True)
class Preference:
    prompt: tuple[Message, ...]  # ends with the user's turn
    chosen: str
    rejected: str
    where: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "prompt": [m.as_dict() for m in self.prompt],
            "chosen": self.chosen,
            "rejected": self.rejected,
            **({"metadata": self.metadata} if self.metadata else {}),
        }


class DataError(TrainError):
    """Invalid data; ``problems`` lists each one as 'where: field: what'."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_PROBLEMS]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more)


# -- reading ----------------------------------------------------------------------------------


def data_path(spec: str) -> Path:
    """A data file's path; ``bundled:chat-seed`` is the seed set shipped with the trainer."""
    if spec.startswith("bundled:"):
        name = spec.removeprefix("bundled:")
        if name not in BUNDLED_DATA:
            raise TrainError(f"unknown bundled data set {name!r}; known: {', '.join(sorted(BUNDLED_DATA))}")
        return Path(str(resources.files("trainer").joinpath("data", BUNDLED_DATA[name])))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise TrainError(f"data {spec!r}: no such file")
    return path


def data_sha256(spec: str) -> str:
    return hashlib.sha256(data_path(spec).read_bytes()).hexdigest()


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) pairs from a JSON array or a JSONL file; bad JSON is reported by line."""
    text = path.read_text(encoding="utf-8")
    name = path.name
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(name, [f"{name} line {exc.lineno}: not valid JSON: {exc.msg}"]) from None
        if not isinstance(data, list):
            raise DataError(name, [f"{name}: expected a JSON array of records, got {type(data).__name__}"])
        for index, record in enumerate(data):
            yield f"{name} record {index}", record
        return
    problems = []
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append((f"{name} line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"{name} line {number}: not valid JSON: {exc.msg}")
    if problems:
        raise DataError(name, problems)
    yield from lines


def load_conversations(spec: str) -> list[Conversation]:
    """Read ShareGPT or OpenAI-messages data; raise :class:`DataError` listing every problem."""
    path = data_path(spec)
    conversations: list[Conversation] = []
    problems: list[str] = []
    for where, record in _records(path):
        if isinstance(record, dict) and "id" in record and "conversations" in record:
            where = f"{where} (id {record['id']!r})"
        try:
            conversations.append(Conversation(parse_conversation(record, where), where))
        except _Problem as exc:
            problems.append(str(exc))
    if problems:
        raise DataError(path.name, problems)
    if not conversations:
        raise DataError(path.name, [f"{path.name}: no conversations"])
    return conversations


class _Problem(Exception):
    pass


def parse_conversation(record: Any, where: str) -> tuple[Message, ...]:
    """One record in either format, checked: roles known, turns non-empty and alternating."""
    if not isinstance(record, dict):
        raise _Problem(f"{where}: expected an object, got {type(record).__name__}")
    if "messages" in record:
        turns, key = record["messages"], "messages"
        if not isinstance(turns, list):
            raise _Problem(f"{where}: messages: expected a list")
        messages = [_openai_message(turn, f"{where}: messages[{i}]") for i, turn in enumerate(turns)]
    elif "conversations" in record:
        turns, key = record["conversations"], "conversations"
        if not isinstance(turns, list):
            raise _Problem(f"{where}: conversations: expected a list")
        messages = [_sharegpt_message(turn, f"{where}: conversations[{i}]") for i, turn in enumerate(turns)]
    else:
        raise _Problem(f"{where}: needs a 'messages' (OpenAI) or 'conversations' (ShareGPT) field")
    check_turns(messages, where, key)
    return tuple(messages)


def _openai_message(turn: Any, where: str) -> Message:
    if not isinstance(turn, dict):
        raise _Problem(f"{where}: expected an object with role and content")
    role = turn.get("role")
    if role not in ROLES:
        raise _Problem(f"{where}.role: unknown role {role!r} (expected one of {', '.join(ROLES)})")
    return Message("system" if role == "developer" else role, _text(turn.get("content"), f"{where}.content"))


def _sharegpt_message(turn: Any, where: str) -> Message:
    if not isinstance(turn, dict):
        raise _Problem(f"{where}: expected an object with from and value")
    speaker = turn.get("from")
    if speaker not in SHAREGPT_ROLES:
        raise _Problem(f"{where}.from: unknown speaker {speaker!r} (expected one of {', '.join(SHAREGPT_ROLES)})")
    return Message(SHAREGPT_ROLES[speaker], _text(turn.get("value"), f"{where}.value"))


def _text(content: Any, where: str) -> str:
    """A string, or OpenAI's list of text parts, stripped; empty text is an error."""
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise _Problem(f"{where}[{i}]: only text parts are supported")
            parts.append(part["text"])
        content = "".join(parts)
    if not isinstance(content, str):
        raise _Problem(f"{where}: expected text, got {type(content).__name__}")
    if not content.strip():
        raise _Problem(f"{where}: empty turn")
    return content.strip()


def check_turns(messages: list[Message], where: str, key: str, *, end_with: str = "assistant") -> None:
    """System turns only first; then user, assistant, user... ending with ``end_with``."""
    if not messages:
        raise _Problem(f"{where}: {key}: empty conversation")
    start = 0
    while start < len(messages) and messages[start].role == "system":
        start += 1
    if start == len(messages):
        raise _Problem(f"{where}: {key}: only system turns")
    for i in range(start, len(messages)):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if messages[i].role != expected:
            raise _Problem(
                f"{where}: {key}[{i}]: turns must alternate user/assistant after any system turns;"
                f" expected {expected}, got {messages[i].role}"
            )
    if messages[-1].role != end_with:
        raise _Problem(f"{where}: {key}[{len(messages) - 1}]: the last turn must be the {end_with}'s")


def load_preferences(spec: str) -> list[Preference]:
    """Read preference JSONL; raise :class:`DataError` listing every problem."""
    path = data_path(spec)
    pairs: list[Preference] = []
    problems: list[str] = []
    for where, record in _records(path):
        try:
            pairs.append(parse_preference(record, where))
        except _Problem as exc:
            problems.append(str(exc))
    if problems:
        raise DataError(path.name, problems)
    if not pairs:
        raise DataError(path.name, [f"{path.name}: no preference pairs"])
    return pairs


def parse_preference(record: Any, where: str) -> Preference:
    if not isinstance(record, dict):
        raise _Problem(f"{where}: expected an object with prompt, chosen and rejected")
    for key in ("prompt", "chosen", "rejected"):
        if key not in record:
            raise _Problem(f"{where}: {key}: missing")
    raw_prompt = record["prompt"]
    if isinstance(raw_prompt, list):
        prompt = [_openai_message(turn, f"{where}: prompt[{i}]") for i, turn in enumerate(raw_prompt)]
        check_turns(prompt, where, "prompt", end_with="user")
    else:
        prompt = [Message("user", _text(raw_prompt, f"{where}: prompt"))]
    chosen = _answer(record["chosen"], f"{where}: chosen")
    rejected = _answer(record["rejected"], f"{where}: rejected")
    if chosen == rejected:
        raise _Problem(f"{where}: chosen, rejected: the two answers are identical")
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _Problem(f"{where}: metadata: expected an object")
    extra = {k: v for k, v in record.items() if k not in ("prompt", "chosen", "rejected", "metadata")}
    return Preference(tuple(prompt), chosen, rejected, where, {**extra, **metadata})


def _answer(value: Any, where: str) -> str:
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            raise _Problem(f"{where}: expected a string or one assistant message")
        return _text(value[0].get("content"), f"{where}[0].content")
    return _text(value, where)


def split(items: list[Any], eval_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded shuffle, then the last ``eval_fraction`` held out (at least one item when any)."""
    if not 0 <= eval_fraction < 1:
        raise TrainError("eval fraction must be in [0, 1)")
    order = list(items)
    random.Random(seed).shuffle(order)
    held = round(len(order) * eval_fraction)
    if eval_fraction > 0 and len(order) >= 2:
        held = max(held, 1)
    return order[: len(order) - held], order[len(order) - held :]


# -- tokenizing ---------------------------------------------------------------------------------


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]
    where: str
    truncated: bool = False  # later answers did not fit in max length and were left out


@dataclass
class Encoded:
    """Samples ready to train on, and the ones left out with why (shown to the user)."""

    samples: list[Sample]
    problems: list[str]
    truncated: int = 0

    @property
    def tokens(self) -> int:
        return sum(len(s.input_ids) for s in self.samples)


class MaskError(Exception):
    """The assistant tokens of a sample cannot be derived exactly."""


def render(tokenizer: Any, template: str, messages: Iterable[Message], *, generation_prompt: bool) -> str:
    return str(
        tokenizer.apply_chat_template(
            [m.as_dict() for m in messages],
            chat_template=template,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of rendered text; the template writes BOS itself, so none is added here."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_conversation(tokenizer: Any, template: str, conversation: Conversation, max_length: int) -> Sample:
    """Input ids and labels (assistant tokens only), cut after the last whole answer that fits."""
    messages = conversation.messages
    ids = encode(tokenizer, render(tokenizer, template, messages, generation_prompt=False))
    labels = [IGNORE] * len(ids)
    end = 0
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        turn = sum(1 for m in messages[: index + 1] if m.role == "assistant")
        prompt = encode(tokenizer, render(tokenizer, template, messages[:index], generation_prompt=True))
        upto = encode(tokenizer, render(tokenizer, template, messages[: index + 1], generation_prompt=False))
        if ids[: len(prompt)] != prompt:
            raise MaskError(
                f"answer {turn}: the prompt before it tokenizes differently on its own than inside the conversation"
            )
        if ids[: len(upto)] != upto:
            raise MaskError(f"answer {turn}: the conversation up to it tokenizes differently than the whole")
        if len(upto) <= len(prompt):
            raise MaskError(f"answer {turn}: the template renders it as no tokens")
        answer = tokenizer.decode(ids[len(prompt) : len(upto)])
        if message.content not in answer:
            raise MaskError(f"answer {turn}: the template changes its text (got {answer[:60]!r})")
        if len(upto) > max_length:
            break
        labels[len(prompt) : len(upto)] = ids[len(prompt) : len(upto)]
        end = len(upto)
    if end == 0:
        raise MaskError(f"too long: the first answer ends past max length {max_length}")
    return Sample(ids[:end], labels[:end], conversation.where, truncated=end < len(ids))


def encode_conversations(tokenizer: Any, template: str, conversations: list[Conversation], max_length: int) -> Encoded:
    samples: list[Sample] = []
    problems: list[str] = []
    for conversation in conversations:
        try:
            samples.append(encode_conversation(tokenizer, template, conversation, max_length))
        except MaskError as exc:
            problems.append(f"{conversation.where}: {exc}")
    return Encoded(samples, problems, sum(s.truncated for s in samples))


def labelled_spans(sample: Sample) -> list[list[int]]:
    """The runs of labelled token ids (one per answer), for checks and tests."""
    spans: list[list[int]] = []
    previous = False
    for token, label in zip(sample.input_ids, sample.labels, strict=True):
        if label != IGNORE:
            if not previous:
                spans.append([])
            spans[-1].append(token)
        previous = label != IGNORE
    return spans
