"""The real server (`arena serve`, bundled Gemma on llama.cpp) through the official openai client."""

from __future__ import annotations

import threading
import time

import openai
import pytest

from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

GREEDY, SAMPLED = "gemma-3-270m-greedy", "gemma-3-270m-t0.8"
PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


@pytest.fixture(scope="module")
def client(arena_server: ArenaServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=arena_server.base + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def vocab():
    import llama_cpp

    from app.registry.spec import load_models

    path = load_models(None)[0].resolved_weights()
    return llama_cpp.Llama(path, vocab_only=True, verbose=False)


def test_lists_both_presets(client: openai.OpenAI) -> None:
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == [GREEDY, SAMPLED]
    assert all(m.object == "model" and m.owned_by == "Google" for m in models.data)


def test_chat_without_streaming(client: openai.OpenAI, vocab) -> None:
    reply = client.chat.completions.create(model=GREEDY, messages=PROMPT, max_tokens=12)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    prompt = "<start_of_turn>user\n" + PROMPT[0]["content"] + "<end_of_turn>\n<start_of_turn>model\n"
    assert reply.usage.prompt_tokens == len(vocab.tokenize(prompt.encode(), add_bos=True, special=True))
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 12


def test_stream_usage_equals_engine_counts(client: openai.OpenAI, arena_server: ArenaServer) -> None:
    before = arena_server.metric("arena_tokens_total", model=SAMPLED, kind="completion")
    before_prompt = arena_server.metric("arena_tokens_total", model=SAMPLED, kind="prompt")
    stream = client.chat.completions.create(
        model=SAMPLED,
        messages=PROMPT,
        max_tokens=20,
        stream=True,
        seed=3,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    usage = chunks[-1].usage
    after = arena_server.metric("arena_tokens_total", model=SAMPLED, kind="completion")
    after_prompt = arena_server.metric("arena_tokens_total", model=SAMPLED, kind="prompt")
    assert usage.completion_tokens == after - before
    assert usage.prompt_tokens == after_prompt - before_prompt
    if finishes[0].choices[0].finish_reason == "length":
        assert usage.completion_tokens == 20


def test_stop_sequence_is_honoured(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model=GREEDY, messages=PROMPT, max_tokens=40, temperature=0)
    text = full.choices[0].message.content
    words = text.split()
    assert len(words) > 4, text
    stop = words[len(words) // 2]
    cut = client.chat.completions.create(model=GREEDY, messages=PROMPT, max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    def ask(seed: int) -> str:
        r = client.chat.completions.create(model=SAMPLED, messages=PROMPT, max_tokens=24, temperature=0.9, seed=seed)
        return r.choices[0].message.content or ""

    assert ask(7) == ask(7)
    greedy = [
        client.chat.completions.create(model=GREEDY, messages=PROMPT, max_tokens=24, temperature=0, seed=1)
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert greedy[0] == greedy[1]


def test_completions_endpoint(client: openai.OpenAI) -> None:
    r = client.completions.create(model=GREEDY, prompt="The capital of France is", max_tokens=5)
    assert r.object == "text_completion" and r.usage.completion_tokens <= 5
    streamed = list(client.completions.create(model=GREEDY, prompt="Once upon", max_tokens=5, stream=True))
    assert sum(1 for c in streamed if c.choices[0].finish_reason) == 1


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=PROMPT)
    assert "The model `no-such-model` does not exist." in str(info.value)


def test_bad_request_and_context_overflow(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=GREEDY, messages=[{"role": "user", "content": "word " * 5000}])
    assert info.value.code == "context_length_exceeded"
    assert info.value.body["message"].startswith("This model's maximum context length is 4096 tokens")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=GREEDY, messages=PROMPT, max_tokens=0)


def test_wrong_api_key_is_rejected(tmp_path) -> None:
    server = ArenaServer(tmp_path, "--api-key", "sekret-key-0123456789")
    try:
        bad = openai.OpenAI(base_url=server.base + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=server.base + "/v1", api_key="sekret-key-0123456789", max_retries=0)
        assert [m.id for m in good.models.list().data]
    finally:
        server.stop()


def test_closing_a_stream_aborts_generation(client: openai.OpenAI, arena_server: ArenaServer) -> None:
    aborted = arena_server.metric("arena_aborted_streams_total", model=GREEDY)
    stream = client.chat.completions.create(model=GREEDY, messages=PROMPT, max_tokens=2000, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    deadline = time.monotonic() + 30
    while arena_server.metric("arena_aborted_streams_total", model=GREEDY) == aborted:
        assert time.monotonic() < deadline, "the server never noticed the closed stream"
        time.sleep(0.05)
    generated = arena_server.metric("arena_tokens_total", model=GREEDY, kind="completion")
    assert arena_server.metric("arena_running_streams", model=GREEDY) == 0
    # the next request is served: it is not stuck behind the abandoned generation
    r = client.chat.completions.create(model=GREEDY, messages=PROMPT, max_tokens=3)
    assert r.usage.completion_tokens <= 3
    assert arena_server.metric("arena_tokens_total", model=GREEDY, kind="completion") <= generated + 3


def test_two_streams_interleave(client: openai.OpenAI) -> None:
    stamps: dict[str, list[float]] = {GREEDY: [], SAMPLED: []}

    def run(model: str) -> None:
        stream = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=48, stream=True, seed=5)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                stamps[model].append(time.monotonic())

    threads = [threading.Thread(target=run, args=(m,)) for m in stamps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = stamps[GREEDY], stamps[SAMPLED]
    assert len(a) > 5 and len(b) > 5
    # each stream received tokens while the other was still in progress
    assert any(a[0] < t < a[-1] for t in b)
    assert any(b[0] < t < b[-1] for t in a)
