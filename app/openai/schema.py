"""Request models for the OpenAI-compatible API and the chunks it streams.

Parsing is strict about types (``"max_tokens": "5"`` is an error) and lenient about unknown
fields (accepted, and logged by the route).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.engines.base import ChatMessage, Image
from app.errors import Invalid, validated


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImageURL(_Lenient):
    url: str = Field(description="A data: URL (data:image/png;base64,...); https only from allowed domains.")
    detail: Literal["auto", "low", "high"] | None = None  # accepted; every image is resized the same way


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


class Message(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def image_urls(self) -> list[tuple[int, str]]:
        """(part index, URL) of each image part, in order."""
        if not isinstance(self.content, list):
            return []
        return [(j, part.image_url.url) for j, part in enumerate(self.content) if isinstance(part, ImagePart)]


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Sampling(_Lenient):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    # llama-server and vLLM extensions; unset: the model's defaults
    top_k: int | None = Field(None, ge=0, description="Sample from the k likeliest tokens only; 0 is off.")
    min_p: float | None = Field(
        None, ge=0, le=1, description="Drop tokens below min_p times the top token's probability."
    )
    repeat_penalty: float | None = Field(
        None, gt=0, le=10, description="Divide the logits of recently generated tokens by this; 1 is off."
    )
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, gt=0)

    def chat_messages(self, images: Mapping[int, tuple[Image, ...]] | None = None) -> list[ChatMessage]:
        """The conversation for an engine; ``images`` holds the cleaned images by message index
        (see :mod:`app.openai.images`, which makes them from :meth:`image_urls`)."""
        images = images or {}
        return [ChatMessage(m.role, m.text(), images.get(i, ())) for i, m in enumerate(self.messages)]

    def image_urls(self) -> list[tuple[int, int, str]]:
        """(message index, part index, URL) of every image part in the conversation."""
        return [(i, j, url) for i, m in enumerate(self.messages) for j, url in m.image_urls()]

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise Invalid("Only one prompt per request is supported.", param="prompt")
        return self.prompt[0]


def parse(model: type[_Sampling], body: bytes) -> Any:
    """Validate a JSON body, raising :class:`Invalid` that names the offending field."""
    request = validated(model, body)
    _reject_nul(request)
    if request.n > 1:
        raise Invalid("n > 1 is not supported; send separate requests.", param="n")
    return request


def _reject_nul(request: _Sampling) -> None:
    texts: list[tuple[str, str]] = []
    if isinstance(request, ChatCompletionRequest):
        texts = [(f"messages[{i}].content", m.text()) for i, m in enumerate(request.messages)]
    elif isinstance(request, CompletionRequest):
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        texts = [("prompt", p) for p in prompts]
    texts += [("stop", s) for s in request.stops()]
    for param, text in texts:
        if "\x00" in text:
            raise Invalid("Text may not contain NUL bytes.", param=param)
