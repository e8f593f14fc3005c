"""OpenAI wire format: SSE events and response objects, built from engine deltas.

Pure functions and one small class, so the exact bytes are unit-testable.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.engines.base import ContextLengthExceeded, Delta, EngineOverloaded
from app.errors import DomainError
from app.openai.errors import body, domain_body

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


def sse(payload: Any) -> bytes:
    """One SSE event: ``data: <compact json>`` and a blank line."""
    return b"data: " + _encode(payload) + b"\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


@dataclass
class Completion:
    """Identity shared by every chunk of one response."""

    model: str
    chat: bool = True
    include_usage: bool = False
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "chatcmpl-" if self.chat else "cmpl-"
            self.id = prefix + uuid.uuid4().hex

    @property
    def object(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            payload["usage"] = None
        payload.update(extra)
        return sse(payload)

    def _choice(self, text: str | None, reason: str | None, role: bool = False) -> dict[str, Any]:
        if not self.chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}
        delta: dict[str, str] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}

    def role_chunk(self) -> bytes:
        return self._chunk([self._choice("", None, role=True)])

    def text_chunk(self, text: str) -> bytes:
        return self._chunk([self._choice(text, None)])

    def finish_chunk(self, reason: str) -> bytes:
        return self._chunk([self._choice(None if self.chat else "", reason)])

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return self._chunk([], usage=usage(prompt_tokens, completion_tokens))

    def response(self, text: str, reason: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        """The whole (non-streamed) response object."""
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": reason,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            obj = "text_completion"
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage(prompt_tokens, completion_tokens),
        }


GENERIC_FAILURE = "The model failed while generating; please retry."


def error_event(error: Exception) -> bytes:
    """The ``error`` event of a stream that broke after it started. Our own messages (a domain
    error, a context overflow, an overload) are sent as they are; an engine's raw message may
    carry paths, upstream bodies or library internals, so it goes to the log and the client gets
    a generic one."""
    if isinstance(error, DomainError):
        return sse(domain_body(error))
    if isinstance(error, ContextLengthExceeded):
        return sse(body(str(error), "invalid_request_error", "messages", "context_length_exceeded"))
    if isinstance(error, EngineOverloaded):
        return sse(body(str(error), "server_error", None, "overloaded"))
    log.warning("stream failed mid-generation: %s: %s", type(error).__name__, error)
    return sse(body(GENERIC_FAILURE, "server_error"))


async def stream_events(
    completion: Completion, first: Delta, rest: AsyncGenerator[Delta, None]
) -> AsyncIterator[bytes]:
    """The SSE body: role chunk (chat), text chunks, one finish chunk, usage, ``[DONE]``.

    ``first`` was already pulled so that errors before generation became HTTP statuses.
    An error after the stream started is sent as an ``error`` event, then ``[DONE]``.
    """
    if completion.chat:
        yield completion.role_chunk()
    last = first
    try:
        delta: Delta | None = first
        while delta is not None:
            last = delta
            if delta.text:
                yield completion.text_chunk(delta.text)
            if delta.finish_reason is not None:
                break
            delta = await anext(rest, None)
        yield completion.finish_chunk(finish_reason(last.finish_reason))
        if completion.include_usage:
            yield completion.usage_chunk(last.prompt_tokens, last.completion_tokens)
    except Exception as exc:  # noqa: BLE001 - becomes an error event on the open stream
        yield error_event(exc)
    finally:
        await rest.aclose()  # stops the engine within a token when the client went away
    yield DONE
