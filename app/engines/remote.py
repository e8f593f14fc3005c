"""Any OpenAI-compatible endpoint as an engine: hosted models, vLLM, SGLang, another Arena.

Streams ``POST {base_url}/chat/completions`` (or ``/completions`` for raw prompts) over
``httpx.AsyncClient`` and turns the server-sent events into :class:`Delta` objects. Connect
failures are retried a bounded number of times; nothing is retried once a response started.
Remote errors map onto ours: context overflow, overload (429/503) and everything else.

The API key is never part of the configuration: the engine is given the *name* of an
environment variable, reads it once at construction, and keeps it only in the client's
default headers.

What the remote answers is never echoed in an error: its body may be anything the URL serves
(an internal page, another service's secrets), so errors name the status and the body goes to
the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx

from app.engines.base import (
    ChatMessage,
    ContextLengthExceeded,
    Delta,
    Engine,
    EngineError,
    EngineOverloaded,
    EngineStats,
    FinishReason,
    Gate,
    GenerationRequest,
)

log = logging.getLogger(__name__)

ENV_PREFIX = "ARENA_REMOTE_"  # the default of --remote-env-prefix

_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
_MAX_CONTEXT_RE = re.compile(r"maximum context length is (\d+)")
_PROMPT_TOKENS_RE = re.compile(
    r"(\d+) (?:tokens )?in the messages"
    r"|messages resulted in (\d+) tokens"
    r"|prompt (?:has|contains) (\d+) tokens"
)
_FINISH: dict[str, FinishReason] = {"length": "length", "abort": "abort", "error": "error"}


class RemoteEngine(Engine):
    """An engine backed by a remote OpenAI-compatible HTTP API."""

    kind = "remote"
    streams = True
    vision = True  # images pass through as data: URLs; the models file's ``vision`` says if upstream sees

    def __init__(
        self,
        base_url: str,
        remote_model: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        connect_retries: int = 2,
        max_context: int = 8192,
        transport: httpx.AsyncBaseTransport | None = None,
        env_prefix: str = ENV_PREFIX,
        parallel: int = 8,
        max_queue: int = 16,
    ) -> None:
        headers = {"Accept": "text/event-stream, application/json"}
        if api_key_env and not api_key_env.startswith(env_prefix):
            raise ValueError(f"api_key_env must start with {env_prefix}; {api_key_env!r} does not.")
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(
                    f"Environment variable {api_key_env} is not set; it must hold the API key "
                    f"for the remote model {remote_model!r}."
                )
            headers["Authorization"] = f"Bearer {key}"
        self.base_url = base_url.rstrip("/")
        self.remote_model = remote_model
        self.api_key_env = api_key_env
        self.connect_retries = max(connect_retries, 0)
        self.max_context = max_context
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )
        self._aborted: set[str] = set()
        self.gate = Gate(parallel, max_queue)
        self._requests_total = 0
        self._errors_total = 0
        self._connect_failures = 0

    # lifecycle -------------------------------------------------------------------------

    async def check(self) -> None:
        """Raise :class:`EngineError` unless the remote answers and serves ``remote_model``."""
        try:
            async with self._connect("GET", "/models") as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._http_error(response, None)
                await response.aread()
        except httpx.HTTPError as exc:
            raise EngineError(f"Remote {self.base_url} failed: {type(exc).__name__}") from exc
        try:
            served = [m.get("id") for m in response.json().get("data", [])]
        except (ValueError, AttributeError) as exc:
            raise EngineError(f"Remote {self.base_url}/models did not return a model list.") from exc
        if self.remote_model not in served:
            log.warning("remote %s lists these models: %s", self.base_url, ", ".join(str(s) for s in served[:50]))
            raise EngineError(
                f"Remote {self.base_url} does not serve model {self.remote_model!r} (see the log for what it lists)."
            )

    async def health(self) -> bool:
        try:
            await self.check()
        except EngineError:
            return False
        return True

    async def close(self) -> None:
        await self._client.aclose()

    async def abort(self, request_id: str) -> None:
        """Stop a running stream at its next chunk (closing the generator stops it at once)."""
        self._aborted.add(request_id)

    def stats(self) -> EngineStats:
        return self.gate.stats(
            requests_total=self._requests_total,
            errors_total=self._errors_total,
            extra={"connect_failures_total": self._connect_failures},
        )

    # generation ------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        path, body = self._body(request)
        async with self.gate.slot(), aclosing(self._generate(request, path, body)) as stream:
            async for delta in stream:
                yield delta

    async def _generate(
        self, request: GenerationRequest, path: str, body: dict[str, Any]
    ) -> AsyncGenerator[Delta, None]:
        self._requests_total += 1
        self._aborted.discard(request.request_id)
        try:
            async with self._connect("POST", path, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._http_error(response, request)
                chat = request.messages is not None
                async with aclosing(self._read_stream(response, request, chat=chat)) as stream:
                    async for delta in stream:
                        yield delta
        except EngineError:
            self._errors_total += 1
            raise
        finally:
            self._aborted.discard(request.request_id)

    async def _read_stream(
        self, response: httpx.Response, request: GenerationRequest, *, chat: bool
    ) -> AsyncGenerator[Delta, None]:
        prompt_tokens = completion_tokens = 0
        finish: str | None = None
        done = False
        try:
            async for line in response.aiter_lines():
                if request.request_id in self._aborted:
                    yield Delta("", prompt_tokens, completion_tokens, "abort")
                    return
                if not line.startswith("data:"):
                    continue  # blank separators, comments, "event:" lines
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                event = _parse_event(data)
                if event.get("error"):
                    log.warning("remote model %s failed mid-stream: %s", self.remote_model, _message_of(event["error"]))
                    raise EngineError(f"Remote model {self.remote_model} failed mid-stream.")
                usage = event.get("usage")
                if isinstance(usage, dict):
                    prompt_tokens = int(usage.get("prompt_tokens") or prompt_tokens)
                    completion_tokens = int(usage.get("completion_tokens") or completion_tokens)
                for choice in event.get("choices") or []:
                    text = _choice_text(choice, chat=chat)
                    finish = choice.get("finish_reason") or finish
                    if text:
                        if not isinstance(usage, dict):
                            completion_tokens += 1
                        yield Delta(text, prompt_tokens, completion_tokens)
        except httpx.TimeoutException as exc:
            raise EngineError(f"Remote model {self.remote_model} timed out mid-stream.") from exc
        except httpx.HTTPError as exc:
            raise EngineError(f"Remote model {self.remote_model} dropped the stream ({type(exc).__name__}).") from exc
        if not done and finish is None:
            raise EngineError(f"Remote model {self.remote_model} ended the stream early.")
        yield Delta("", prompt_tokens, completion_tokens, _FINISH.get(finish or "stop", "stop"))

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.remote_model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": max(request.temperature, 0.0),
            "top_p": request.top_p,
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        # llama-server/vLLM extensions, sent only when set: an upstream that knows none of them (OpenAI)
        # refuses them with its own 400, which the client sees
        if request.top_k > 0:
            body["top_k"] = request.top_k
        if request.min_p > 0:
            body["min_p"] = request.min_p
        if request.repeat_penalty != 1.0:
            body["repeat_penalty"] = request.repeat_penalty  # llama-server's name
            body["repetition_penalty"] = request.repeat_penalty  # vLLM's
        if request.messages is not None:
            body["messages"] = [
                {"role": "system" if m.role == "developer" else m.role, "content": _content(m)}
                for m in request.messages
            ]
            return "/chat/completions", body
        if request.prompt is None:
            raise EngineError("A request needs either messages or a prompt.")
        body["prompt"] = request.prompt
        return "/completions", body

    @asynccontextmanager
    async def _connect(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """Open a streamed response, retrying only failures to connect."""
        request = self._client.build_request(method, path, **kwargs)
        attempt = 0
        while True:
            try:
                response = await self._client.send(request, stream=True)
                break
            except _CONNECT_ERRORS as exc:
                self._connect_failures += 1
                if attempt >= self.connect_retries:
                    raise EngineError(f"Remote {self.base_url} is unreachable ({type(exc).__name__}).") from exc
                await asyncio.sleep(0.2 * 2**attempt)
                attempt += 1
            except httpx.TimeoutException as exc:
                raise EngineError(f"Remote {self.base_url} timed out.") from exc
        try:
            yield response
        finally:
            await response.aclose()

    def _http_error(self, response: httpx.Response, request: GenerationRequest | None) -> EngineError:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        message = _message_of(error)
        code = error.get("code") if isinstance(error, dict) else None
        if status in (429, 503):
            return EngineOverloaded(_retry_after(response.headers.get("Retry-After")))
        if status == 400 and (code == "context_length_exceeded" or "maximum context length" in message):
            limit = _MAX_CONTEXT_RE.search(message)
            prompt = _PROMPT_TOKENS_RE.search(message)
            return ContextLengthExceeded(
                int(limit.group(1)) if limit else self.max_context,
                int(next(g for g in prompt.groups() if g)) if prompt else 0,
                request.max_tokens if request else None,
            )
        what = f"{response.request.method} {response.request.url.path}"
        log.warning("remote %s answered HTTP %d to %s: %s", self.base_url, status, what, message)
        if status in (401, 403):
            return EngineError(f"Remote {self.base_url} rejected the credentials (HTTP {status}).")
        return EngineError(f"Remote model {self.remote_model} returned HTTP {status} to {what} (body in the log).")


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """A message's content: plain text, or OpenAI content parts when it carries images."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [{"type": "image_url", "image_url": {"url": image.data_url()}} for image in message.images]
    return parts


def _parse_event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise EngineError("Remote sent a malformed stream event.") from exc
    if not isinstance(event, dict):
        raise EngineError("Remote sent a malformed stream event.")
    return event


def _choice_text(choice: dict[str, Any], *, chat: bool) -> str:
    if chat:
        delta = choice.get("delta") or {}
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


def _message_of(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or json.dumps(error))[:500]
    return str(error).strip()[:500] or "no details"


def _retry_after(value: str | None) -> int:
    try:
        return max(int(float(value or "")), 1)
    except ValueError:
        return 1
