"""RemoteEngine against a fake OpenAI-compatible server on a real loopback socket."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.engines.base import (
    ChatMessage,
    ContextLengthExceeded,
    Delta,
    EngineError,
    EngineOverloaded,
    GenerationRequest,
)
from app.engines.remote import RemoteEngine

MODELS = ["echo", "no-usage", "ctx", "busy", "unavailable", "boom", "die", "error-event", "slow"]
CTX_MESSAGE = (
    "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
    "(4000 in the messages, 1000 in the completion). Please reduce the length of the messages "
    "or completion."
)


def chunk(model: str, text: str | None = None, finish: str | None = None, **extra: Any) -> dict:
    delta = {} if text is None else {"content": text}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


class FakeOpenAI:
    """A tiny HTTP/1.1 server: one request per connection, SSE bodies in chunked encoding."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.base_url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            request_line, *header_lines = head.strip().split("\r\n")
            method, path, _ = request_line.split(" ")
            headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
            length = int(headers.get("content-length", "0"))
            body = json.loads(await reader.readexactly(length)) if length else {}
            self.headers.append(headers)
            self.requests.append({"method": method, "path": path, **body})
            await self.route(method, path, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away (abort, aclose): nothing left to do
        finally:
            writer.close()

    async def route(self, method: str, path: str, body: dict[str, Any], w: asyncio.StreamWriter) -> None:
        if method == "GET" and path == "/v1/models":
            return await self.json(w, 200, {"object": "list", "data": [{"id": m} for m in MODELS]})
        model = body.get("model")
        if model == "ctx":
            error = {"message": CTX_MESSAGE, "type": "invalid_request_error"}
            return await self.json(w, 400, {"error": {**error, "code": "context_length_exceeded"}})
        if model == "busy":
            return await self.json(w, 429, {"error": {"message": "slow down"}}, {"Retry-After": "7"})
        if model == "unavailable":
            return await self.json(w, 503, {"error": {"message": "warming up"}})
        if model == "boom":
            return await self.json(w, 500, {"error": {"message": "kaboom"}})
        await self.start_stream(w)
        completions = path == "/v1/completions"
        if model == "echo":
            for piece in ["Hel", "lo", " world"]:
                if completions:
                    await self.event(w, {"choices": [{"index": 0, "text": piece}]})
                else:
                    await self.event(w, chunk(model, piece))
            await self.event(w, chunk(model, finish="stop"))
            usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
            await self.event(w, {**chunk(model), "choices": [], "usage": usage})
        elif model == "no-usage":
            for piece in ["a", "b", "c", "d"]:
                await self.event(w, chunk(model, piece))
            await self.event(w, chunk(model, finish="length"))
        elif model == "die":
            await self.event(w, chunk(model, "one"))
            await self.event(w, chunk(model, "two"))
            return  # the socket closes without the terminating chunk
        elif model == "error-event":
            await self.event(w, chunk(model, "partial"))
            await self.event(w, {"error": {"message": "upstream fell over", "code": 500}})
            return
        elif model == "slow":
            for i in range(200):
                await self.event(w, chunk(model, f"t{i} "))
                await asyncio.sleep(0.01)
        await self.send_chunk(w, b"data: [DONE]\n\n")
        await self.send_chunk(w, b"")

    async def json(self, w: asyncio.StreamWriter, status: int, payload: Any, extra: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        w.write(self.head(status, {**headers, **(extra or {})}) + data)
        await w.drain()

    async def start_stream(self, w: asyncio.StreamWriter) -> None:
        headers = {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"}
        w.write(self.head(200, headers))
        await w.drain()

    async def event(self, w: asyncio.StreamWriter, payload: dict[str, Any]) -> None:
        await self.send_chunk(w, f"data: {json.dumps(payload)}\n\n".encode())

    async def send_chunk(self, w: asyncio.StreamWriter, data: bytes) -> None:
        w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await w.drain()

    @staticmethod
    def head(status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} X", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


@asynccontextmanager
async def fake_server() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fake.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()


def run_with_engine(model: str, body: Callable[[RemoteEngine, FakeOpenAI], Awaitable[Any]], **kwargs: Any) -> Any:
    async def main() -> Any:
        async with fake_server() as fake:
            engine = RemoteEngine(fake.base_url, model, **kwargs)
            try:
                return await body(engine, fake)
            finally:
                await engine.close()

    return asyncio.run(main())


def chat(**kwargs: Any) -> GenerationRequest:
    messages = [ChatMessage("developer", "Be terse."), ChatMessage("user", "Hi")]
    return GenerationRequest("req-1", messages=messages, **kwargs)


async def collect(engine: RemoteEngine, request: GenerationRequest) -> list[Delta]:
    return [d async for d in engine.generate(request)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_streams_text_and_takes_counts_from_usage() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        deltas = await collect(engine, chat(max_tokens=50, stop=["\n\n"], seed=3, temperature=0))
        assert [d.text for d in deltas] == ["Hel", "lo", " world", ""]
        assert [d.completion_tokens for d in deltas[:3]] == [1, 2, 3]
        assert deltas[-1] == Delta("", 11, 3, "stop")
        sent = fake.requests[-1]
        assert sent["path"] == "/v1/chat/completions"
        assert sent["model"] == "echo" and sent["stream"] is True
        assert sent["stream_options"] == {"include_usage": True}
        assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
        assert (sent["max_tokens"], sent["stop"], sent["seed"]) == (50, ["\n\n"], 3)
        assert sent["temperature"] == 0
        assert not {"top_k", "min_p", "repeat_penalty", "repetition_penalty"} & set(sent)  # off: not sent

    run_with_engine("echo", body)


def test_top_k_min_p_and_repeat_penalty_pass_through() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        await collect(engine, chat(max_tokens=5, top_k=40, min_p=0.05, repeat_penalty=1.1))
        sent = fake.requests[-1]
        assert (sent["top_k"], sent["min_p"], sent["repeat_penalty"], sent["repetition_penalty"]) == (
            40,
            0.05,
            1.1,
            1.1,
        )

    run_with_engine("echo", body)


def test_completions_for_raw_prompts() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        deltas = await collect(engine, GenerationRequest("p", prompt="Once"))
        assert "".join(d.text for d in deltas) == "Hello world"
        assert fake.requests[-1]["path"] == "/v1/completions"
        assert fake.requests[-1]["prompt"] == "Once"
        assert "max_tokens" not in fake.requests[-1]

    run_with_engine("echo", body)


def test_counts_deltas_without_usage() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        deltas = await collect(engine, chat())
        assert deltas[-1].completion_tokens == 4
        assert deltas[-1].finish_reason == "length"

    run_with_engine("no-usage", body)


def test_context_length_error_maps_to_ours() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        with pytest.raises(ContextLengthExceeded) as info:
            await collect(engine, chat(max_tokens=1000))
        assert (info.value.max_context, info.value.prompt_tokens) == (4096, 4000)
        assert info.value.max_tokens == 1000

    run_with_engine("ctx", body)


@pytest.mark.parametrize(("model", "retry_after"), [("busy", 7), ("unavailable", 1)])
def test_overload_maps_with_retry_after(model: str, retry_after: int) -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        with pytest.raises(EngineOverloaded) as info:
            await collect(engine, chat())
        assert info.value.retry_after == retry_after
        assert len(fake.requests) == 1  # HTTP errors are never retried

    run_with_engine(model, body)


def test_server_error_is_prefixed() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        with pytest.raises(EngineError, match=r"Remote model boom returned HTTP 500") as info:
            await collect(engine, chat())
        assert "kaboom" not in str(info.value)  # the upstream's body is logged, never echoed (issue 19)

    run_with_engine("boom", body)


def test_death_mid_stream_raises_after_partial_text() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        seen: list[str] = []
        with pytest.raises(EngineError, match="dropped the stream|ended the stream early"):
            async for d in engine.generate(chat()):
                seen.append(d.text)
        assert seen == ["one", "two"]
        assert len(fake.requests) == 1  # never retried once the stream started
        assert engine.stats().errors_total == 1

    run_with_engine("die", body)


def test_error_event_mid_stream() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        with pytest.raises(EngineError, match="failed mid-stream") as info:
            await collect(engine, chat())
        assert "upstream fell over" not in str(info.value)  # logged, never echoed (issue 19)

    run_with_engine("error-event", body)


def test_abort_and_aclose_stop_a_stream() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        deltas = []
        async for d in engine.generate(chat()):
            deltas.append(d)
            if len(deltas) == 2:
                await engine.abort("req-1")
        assert deltas[-1].finish_reason == "abort"
        assert len(deltas) == 3

        gen = engine.generate(chat())
        await gen.__anext__()
        await gen.aclose()
        assert engine.stats().running == 0

    run_with_engine("slow", body)


def test_api_key_comes_from_the_named_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARENA_REMOTE_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="ARENA_REMOTE_TEST_KEY"):
        RemoteEngine("http://127.0.0.1:1/v1", "echo", api_key_env="ARENA_REMOTE_TEST_KEY")

    monkeypatch.setenv("ARENA_REMOTE_TEST_KEY", "sk-test-sekrit")

    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        await collect(engine, chat())
        assert fake.headers[-1]["authorization"] == "Bearer sk-test-sekrit"
        stored = {k: v for k, v in vars(engine).items() if k != "_client"}
        assert "sk-test-sekrit" not in repr(stored)

    run_with_engine("echo", body, api_key_env="ARENA_REMOTE_TEST_KEY")


def test_check_and_health() -> None:
    async def body(engine: RemoteEngine, fake: FakeOpenAI) -> None:
        await engine.check()
        assert await engine.health() is True
        missing = RemoteEngine(fake.base_url, "not-served")
        with pytest.raises(EngineError, match="does not serve model 'not-served'"):
            await missing.check()
        assert await missing.health() is False
        await missing.close()
        assert fake.requests[0]["path"] == "/v1/models"

    run_with_engine("echo", body)


def test_unreachable_remote_retries_connects_then_fails() -> None:
    async def main() -> None:
        engine = RemoteEngine(f"http://127.0.0.1:{free_port()}/v1", "echo", connect_retries=2)
        with pytest.raises(EngineError, match="unreachable"):
            await collect(engine, chat())
        assert engine.stats().extra["connect_failures_total"] == 3
        with pytest.raises(EngineError, match="unreachable"):
            await engine.check()
        await engine.close()

    asyncio.run(main())


def test_connect_retry_then_success_with_mock_transport() -> None:
    calls = 0
    sse = (
        b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in [chunk("m", "ok"), chunk("m", finish="stop")])
        + b"data: [DONE]\n\n"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    async def main() -> list[Delta]:
        engine = RemoteEngine("http://remote.test/v1", "m", connect_retries=2, transport=httpx.MockTransport(handler))
        try:
            return await collect(engine, chat())
        finally:
            await engine.close()

    deltas = asyncio.run(main())
    assert calls == 3
    assert [d.text for d in deltas] == ["ok", ""]
    assert deltas[-1].finish_reason == "stop"
