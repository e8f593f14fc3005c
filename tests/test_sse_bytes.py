"""The exact bytes of the OpenAI stream."""

from __future__ import annotations

import json

from app.engines.base import Delta, EngineError
from app.openai.stream import DONE, GENERIC_FAILURE, Completion, stream_events


async def _collect(completion: Completion, deltas: list[Delta | Exception]) -> list[bytes]:
    async def rest():
        for d in deltas[1:]:
            if isinstance(d, Exception):
                raise d
            yield d

    first = deltas[0]
    assert isinstance(first, Delta)
    return [chunk async for chunk in stream_events(completion, first, rest())]


async def test_chat_stream_exact_bytes() -> None:
    c = Completion("m", chat=True, include_usage=True, id="chatcmpl-1", created=7)
    chunks = await _collect(c, [Delta("Hel", 5, 1), Delta("lo", 5, 2, "length")])
    head = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":['
    assert chunks == [
        b"data: "
        + head
        + b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}\n\n',
        b"data: "
        + head
        + b'{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n',
        b"data: "
        + head
        + b'{"index":0,"delta":{"content":"lo"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n',
        b"data: " + head + b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}],"usage":null}\n\n',
        b"data: " + head + b'],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n',
        DONE,
    ]
    assert DONE == b"data: [DONE]\n\n"


async def test_without_usage_there_is_no_usage_key_and_one_finish() -> None:
    c = Completion("m", chat=True, include_usage=False)
    chunks = await _collect(c, [Delta("a", 1, 1), Delta("b", 1, 2), Delta("", 1, 2, "stop")])
    payloads = [json.loads(ch[6:]) for ch in chunks[:-1]]
    assert all("usage" not in p for p in payloads)
    assert [p["choices"][0]["finish_reason"] for p in payloads].count("stop") == 1
    assert len({p["id"] for p in payloads}) == 1 and len({p["created"] for p in payloads}) == 1
    assert all(ch.endswith(b"\n\n") and ch.startswith(b"data: ") for ch in chunks)


async def test_error_after_start_is_an_error_event_then_done() -> None:
    c = Completion("m", chat=True)
    chunks = await _collect(c, [Delta("a", 1, 1), EngineError("engine broke")])
    assert chunks[-1] == DONE
    error = json.loads(chunks[-2][6:])
    # the engine's own message goes to the log; the client gets a generic one (issue 19)
    assert error == {"error": {"message": GENERIC_FAILURE, "type": "server_error", "param": None, "code": None}}


async def test_text_completion_chunks() -> None:
    c = Completion("m", chat=False, id="cmpl-1", created=1)
    chunks = await _collect(c, [Delta("x", 1, 1, "stop")])
    first = json.loads(chunks[0][6:])
    assert first["object"] == "text_completion" and first["choices"][0]["text"] == "x"
    assert json.loads(chunks[1][6:])["choices"][0]["finish_reason"] == "stop"
