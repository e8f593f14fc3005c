"""llama.cpp vision: the ``mmproj`` projector in the models file, refused clearly at load when it is
missing or not a projector, and the engine's image path (prompt with media markers, chunks counted
against the context, evaluated in the worker thread).

No projector GGUF is installable here. The test makes one: a tiny random Gemma 3 projector for the
bundled Gemma, converted by llama.cpp's own converter (tests/helpers/tiny_mmproj.py), so libmtmd
runs for real (its answers are nonsense, its steps are not). The engine's plumbing is also checked
with a stand-in projector, and libmtmd refuses files that are not projectors.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image as PILImage

from app.engines.base import ChatMessage, ContextLengthExceeded, EngineError, GenerationRequest, Image
from app.engines.llamacpp import CpuBudget, LlamaCppEngine, LlamaWeights
from app.engines.llamacpp_check import check_gguf
from app.engines.llamacpp_vision import Media, Projector
from app.errors import Invalid
from app.registry.factory import EngineFactory, WeightsError, check_weights
from app.registry.spec import ModelSpec, load_models
from app.server import create_app
from app.settings import Settings
from tests.helpers.tiny_mmproj import IMAGE_TOKENS, build_tiny_mmproj

GEMMA = load_models(None)[0]
IMAGE = Image(b"\x89PNG-not-decoded-here", "image/png", "ab" * 32)


def spec(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate({"id": "seer", "engine": "llama.cpp", "weights": GEMMA.weights, **fields})


@pytest.fixture(scope="module")
def weights() -> Any:
    w = LlamaWeights(GEMMA.resolved_weights(), n_ctx=512)
    w.load()
    yield w
    w.close()


# -- the models file -----------------------------------------------------------------------------


def test_vision_on_llamacpp_needs_mmproj() -> None:
    with pytest.raises(WeightsError, match="vision = true on llama.cpp needs mmproj"):
        check_weights(spec(vision=True), None)


def test_a_missing_projector_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "mmproj-seer-f16.gguf"
    with pytest.raises(WeightsError, match=f"the projector file \\(mmproj\\) {missing} does not exist"):
        check_weights(spec(vision=True, mmproj=str(missing)), [tmp_path])


def test_a_projector_must_be_a_gguf_inside_the_model_folders(tmp_path: Path) -> None:
    fake = tmp_path / "mmproj.gguf"
    fake.write_text("<svg/>")
    with pytest.raises(WeightsError, match="is not a GGUF file"):
        check_weights(spec(vision=True, mmproj=str(fake)), [tmp_path])
    with pytest.raises(WeightsError, match="outside the model folders"):
        check_weights(spec(vision=True, mmproj=str(fake)), [tmp_path / "elsewhere"])
    other = {"id": "hf", "engine": "transformers", "weights": str(tmp_path), "mmproj": str(fake)}
    with pytest.raises(WeightsError, match="mmproj needs the llama.cpp engine"):
        check_weights(ModelSpec.model_validate(other), None)


async def test_the_factory_refuses_before_loading_the_weights(tmp_path: Path) -> None:
    factory = EngineFactory(CpuBudget(2), parallel=1, max_queue=1)
    missing = tmp_path / "mmproj.gguf"
    with pytest.raises(EngineError, match=str(missing)):
        await factory.build(spec(vision=True, mmproj=str(missing)), GEMMA.resolved_weights(), 256)
    assert not factory.shares_weights(GEMMA.resolved_weights())  # nothing was loaded
    with pytest.raises(EngineError, match="needs mmproj"):
        await factory.build(spec(vision=True), GEMMA.resolved_weights(), 256)


async def test_a_gguf_that_is_not_a_projector_is_refused_by_libmtmd(tmp_path: Path) -> None:
    """The bundled text model is a GGUF but no projector; so is a GGUF header with nothing after it."""
    factory = EngineFactory(CpuBudget(2), parallel=1, max_queue=1)
    stub = tmp_path / "mmproj-stub.gguf"
    stub.write_bytes(b"GGUF" + bytes(60))
    try:
        for projector in (GEMMA.resolved_weights(), str(stub)):
            name = Path(projector).name
            with pytest.raises(EngineError, match=f"could not load the projector {name} \\(mmproj\\)"):
                await factory.build(spec(vision=True, mmproj=projector), GEMMA.resolved_weights(), 256)
        text_only = await factory.build(spec(), GEMMA.resolved_weights(), 256)  # the same weights serve on
        assert text_only.vision is False
    finally:
        factory.close()


def test_the_server_marks_the_model_down_naming_the_file(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    missing = tmp_path / "mmproj-gemma.gguf"
    models.write_text(
        f'[[models]]\nid = "seer"\nweights = "{GEMMA.weights}"\nvision = true\nmmproj = "{missing}"\n\n'
        '[[models]]\nid = "echo"\nengine = "scripted"\nscript = ["hi"]\n'
    )
    settings = Settings(models=models, db=tmp_path / "a.db", check_engines=False, admin_token="t" * 32)

    async def run() -> tuple[Any, str]:
        async with AsyncTestClient(create_app(settings)) as client:
            entry = client.app.state.models.get("seer")
            body = {"model": "seer", "messages": [{"role": "user", "content": "hi"}]}
            return await client.post("/v1/chat/completions", json=body), f"{entry.state}: {entry.error}"

    reply, state = asyncio.run(run())
    assert state == f"down: model 'seer': the projector file (mmproj) {missing} does not exist"
    # /v1 says it failed to load in our words, never the server's paths; the state names the file.
    assert reply.status_code == 503 and "failed to load" in reply.json()["error"]["message"]
    assert str(missing) not in reply.json()["error"]["message"]


# -- the engine's image path -----------------------------------------------------------------------


class StandIn(Projector):
    """Does what libmtmd does with a prompt, minus the images: the text (markers dropped) becomes
    the chunks, and evaluating them decodes those tokens into the stream's context."""

    def __init__(self, weights: LlamaWeights, image_tokens: int = 0) -> None:
        super().__init__("stand-in.gguf")
        self.weights = weights
        self.marker = "<__media__>"
        self.image_tokens = image_tokens
        self.calls: list[tuple[str, str, list[bytes]]] = []
        self.freed = 0

    def tokenize(self, text: str, images: Any) -> Media:
        self.calls.append(("tokenize", threading.current_thread().name, list(images)))
        tokens = self.weights.tokenize(text.replace(self.marker + "\n", ""))
        self.text = text
        return Media(tokens, len(tokens) + self.image_tokens)

    def evaluate(self, lctx: Any, media: Media, n_batch: int) -> int:
        import llama_cpp

        self.calls.append(("evaluate", threading.current_thread().name, []))
        tokens = media.chunks
        batch = (llama_cpp.llama_token * len(tokens))(*tokens)
        assert llama_cpp.llama_decode(lctx, llama_cpp.llama_batch_get_one(batch, len(tokens))) == 0
        return len(tokens)

    def free(self, media: Media) -> None:
        self.freed += 1


def request(*messages: ChatMessage, **kw: Any) -> GenerationRequest:
    return GenerationRequest("r", messages=list(messages), temperature=0.0, **kw)


async def test_images_go_through_the_projector_off_the_event_loop(weights: LlamaWeights) -> None:
    projector = StandIn(weights)
    engine = LlamaCppEngine(weights, CpuBudget(2), projector=projector)
    assert engine.vision is True
    asked = request(ChatMessage("user", "What is in the picture?", (IMAGE,)), max_tokens=6)
    deltas = [d async for d in engine.generate(asked)]
    await engine.close()
    assert [c[0] for c in projector.calls] == ["tokenize", "evaluate"]
    assert projector.calls[0][2] == [IMAGE.data]
    assert all(name != threading.current_thread().name for _kind, name, _ in projector.calls)
    assert "<start_of_turn>user\n<__media__>\nWhat is in the picture?" in projector.text
    text_only = [
        d
        async for d in LlamaCppEngine(weights, CpuBudget(2)).generate(
            request(ChatMessage("user", "What is in the picture?"), max_tokens=6)
        )
    ]
    assert "".join(d.text for d in deltas) == "".join(d.text for d in text_only)  # same tokens, same answer
    assert deltas[-1].completion_tokens == 6 and projector.freed == 1


async def test_image_tokens_count_against_the_context(weights: LlamaWeights) -> None:
    projector = StandIn(weights, image_tokens=600)  # more than the 512-token context
    engine = LlamaCppEngine(weights, CpuBudget(2), projector=projector)
    with pytest.raises(ContextLengthExceeded) as caught:
        [d async for d in engine.generate(request(ChatMessage("user", "Hi", (IMAGE,))))]
    await engine.close()
    assert caught.value.prompt_tokens > 600 and projector.freed == 1
    assert [c[0] for c in projector.calls] == ["tokenize"]


async def test_without_images_the_projector_is_not_used(weights: LlamaWeights) -> None:
    projector = StandIn(weights)
    engine = LlamaCppEngine(weights, CpuBudget(2), projector=projector)
    [d async for d in engine.generate(request(ChatMessage("user", "Hi"), max_tokens=2))]
    await engine.close()
    assert projector.calls == [] and projector.freed == 0


# -- a real projector: a tiny random Gemma 3 mmproj made by llama.cpp's converter ------------------


@pytest.fixture(scope="module")
def mmproj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.convert import require_converter
    from trainer.errors import TrainError

    try:
        require_converter()
    except TrainError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return build_tiny_mmproj(tmp_path_factory.mktemp("mmproj"))


def noise(seed: int, size: tuple[int, int] = (120, 80)) -> Image:
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    pixels = (torch.rand(size[1], size[0], 3) * 255).to(torch.uint8).numpy()
    out = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(out, "PNG")
    return Image(out.getvalue(), "image/png", hashlib.sha256(out.getvalue()).hexdigest())


async def test_a_real_projector_sees_the_image(mmproj: Path) -> None:
    factory = EngineFactory(CpuBudget(2), parallel=2, max_queue=4)
    try:
        engine = await factory.build(spec(vision=True, mmproj=str(mmproj)), GEMMA.resolved_weights(), 512)
        assert engine.vision is True

        async def answer(*images: Image) -> tuple[str, int]:
            deltas = [
                d async for d in engine.generate(request(ChatMessage("user", "Describe it.", images), max_tokens=8))
            ]
            return "".join(d.text for d in deltas), deltas[-1].prompt_tokens

        text_only, plain = await answer()
        seen = [await answer(noise(seed)) for seed in (1, 2, 3)]
        # 4 image tokens, plus <start_of_image> and <end_of_image> and the line breaks around them
        assert all(tokens >= plain + IMAGE_TOKENS + 2 for _text, tokens in seen)
        assert len({text for text, _tokens in seen} | {text_only}) > 1  # the pixels change the answer
        both = await asyncio.gather(answer(noise(1)), answer(noise(2)))  # two streams share the projector
        assert list(both) == seen[:2]
        await engine.close()
    finally:
        factory.close()


async def test_a_media_marker_in_the_text_is_not_an_image(mmproj: Path) -> None:
    """libmtmd's marker typed by a user is removed before templating; a prompt whose markers still
    do not match its images is the client's mistake (Invalid, a 400), never an engine failure."""
    factory = EngineFactory(CpuBudget(2), parallel=1, max_queue=2)
    try:
        engine = await factory.build(spec(vision=True, mmproj=str(mmproj)), GEMMA.resolved_weights(), 512)
        marker = engine.projector.marker
        asked = request(
            ChatMessage("system", f"Never say {marker}."),
            ChatMessage("user", f"What is {marker}?"),
            ChatMessage("assistant", f"{marker} is a tag."),
            ChatMessage("user", f"Describe {marker}{marker} it.", (noise(1),)),
            max_tokens=4,
        )
        deltas = [d async for d in engine.generate(asked)]
        assert deltas[-1].completion_tokens == 4
        with pytest.raises(Invalid, match="media markers"):
            engine.projector.tokenize(f"one {marker} too many", [])
        await engine.close()
    finally:
        factory.close()


def test_a_vision_gguf_model_answers_over_v1(mmproj: Path, tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(f'[[models]]\nid = "seer"\nweights = "{GEMMA.weights}"\nvision = true\nmmproj = "{mmproj}"\n')
    settings = Settings(
        models=models,
        db=tmp_path / "a.db",
        check_engines=False,
        generation_rate="1000/1",
        model_rate="1000/1",
    )
    url = "data:image/png;base64," + base64.b64encode(noise(5, (640, 480)).data).decode()
    body = {
        "model": "seer",
        "max_tokens": 4,
        "temperature": 0,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": url}}],
            }
        ],
    }

    text_only = {**body, "messages": [{"role": "user", "content": "What?"}]}

    async def run() -> tuple[Any, Any]:
        async with AsyncTestClient(create_app(settings)) as client:
            with_image = await client.post("/v1/chat/completions", json=body)
            return with_image, await client.post("/v1/chat/completions", json=text_only)

    reply, plain = asyncio.run(run())
    assert reply.status_code == 200 and plain.status_code == 200, reply.text
    usage = reply.json()["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["prompt_tokens"] >= plain.json()["usage"]["prompt_tokens"] + IMAGE_TOKENS + 2  # the image's tokens


async def test_the_start_up_check_runs_the_projector_in_a_child(mmproj: Path, tmp_path: Path) -> None:
    """With check_engines on, a projector is loaded and fed an image in a child process first."""
    ok = await check_gguf(GEMMA.resolved_weights(), mmproj=str(mmproj))
    assert ok.ok, ok.message
    stub = tmp_path / "mmproj-broken.gguf"
    stub.write_bytes(b"GGUF" + bytes(60))
    bad = await check_gguf(GEMMA.resolved_weights(), mmproj=str(stub))
    assert not bad.ok and "could not load the projector mmproj-broken.gguf (mmproj)" in bad.message
    factory = EngineFactory(CpuBudget(2), parallel=1, max_queue=1, check_gguf=check_gguf)
    try:
        with pytest.raises(EngineError, match="mmproj-broken.gguf"):
            await factory.build(spec(vision=True, mmproj=str(stub)), GEMMA.resolved_weights(), 256)
        engine = await factory.build(spec(vision=True, mmproj=str(mmproj)), GEMMA.resolved_weights(), 256)
        assert engine.vision and f"{GEMMA.resolved_weights()}|{mmproj}" in factory.checks
        await engine.close()
    finally:
        factory.close()
