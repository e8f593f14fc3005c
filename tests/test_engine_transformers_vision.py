"""The transformers engine on a vision-language checkpoint: a tiny random-weight LLaVA (CLIP vision
tower + Llama) built in the test, with its processor. It answers over /v1 about a generated image,
and the processor's pixel values are the ones that reach the vision tower."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image as PILImage

from app.engines.base import ChatMessage, GenerationRequest, Image
from app.engines.transformers import TransformersEngine, is_vision_checkpoint
from app.server import create_app
from app.settings import Settings
from tests.helpers.tiny_vlm import IMAGE_SIZE, IMAGE_TOKENS, build_tiny_vlm

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-llava") / "model")


@pytest.fixture(scope="module")
def engine(vlm_dir: Path) -> TransformersEngine:
    engine = TransformersEngine(str(vlm_dir), device="cpu")
    engine.load()
    return engine


def picture(seed: int) -> bytes:
    """A generated PNG: noise (so two seeds differ), not square (the processor crops)."""
    torch.manual_seed(seed)
    pixels = (torch.rand(48, 64, 3) * 255).to(torch.uint8).numpy()
    out = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(out, "PNG")
    return out.getvalue()


def expected_pixels(vlm_dir: Path, png: bytes) -> Any:
    """The processor's own pixel values for the image, computed apart from the engine."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(vlm_dir, local_files_only=True)
    rgb = PILImage.open(io.BytesIO(png)).convert("RGB")
    return processor.image_processor(images=[rgb], return_tensors="pt")["pixel_values"]


class TowerSpy:
    """Records the pixel values each forward pass hands the vision tower."""

    def __init__(self, engine: TransformersEngine) -> None:
        self.seen: list[Any] = []
        tower = engine._model.model.vision_tower
        self.handle = tower.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.seen.append((args[0] if args else kwargs["pixel_values"]).detach().clone())

    def close(self) -> None:
        self.handle.remove()


async def collect(engine: TransformersEngine, request: GenerationRequest) -> tuple[str, int, int]:
    text, last = "", None
    async for delta in engine.generate(request):
        text += delta.text
        last = delta
    assert last is not None and last.finish_reason is not None
    return text, last.prompt_tokens, last.completion_tokens


def test_a_vision_checkpoint_is_recognised(engine: TransformersEngine, vlm_dir: Path, tmp_path: Path) -> None:
    assert engine.vision is True and is_vision_checkpoint(str(vlm_dir))
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert not is_vision_checkpoint(str(tmp_path)) and TransformersEngine(str(tmp_path)).vision is False
    assert engine.max_context == 256  # from the text model's config


def test_pixel_values_reach_the_vision_tower(engine: TransformersEngine, vlm_dir: Path) -> None:
    import hashlib

    png = picture(1)
    image = Image(png, "image/png", hashlib.sha256(png).hexdigest())
    request = GenerationRequest(
        "r1", messages=[ChatMessage("user", "What is this?", (image,))], max_tokens=4, temperature=0
    )
    spy = TowerSpy(engine)
    try:
        text, prompt_tokens, completion_tokens = asyncio.run(collect(engine, request))
    finally:
        spy.close()
    assert len(spy.seen) == 1  # the first forward pass only; later steps reuse the cache
    assert spy.seen[0].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(spy.seen[0], expected_pixels(vlm_dir, png))
    assert prompt_tokens > IMAGE_TOKENS and completion_tokens == 4 and text


def test_the_image_changes_the_answer(engine: TransformersEngine) -> None:
    """Greedy answers to the same words about two different images differ: the pixels are used."""

    def ask(seed: int) -> str:
        import hashlib

        png = picture(seed)
        image = Image(png, "image/png", hashlib.sha256(png).hexdigest())
        message = ChatMessage("user", "Describe it.", (image,))
        return asyncio.run(collect(engine, GenerationRequest("r", messages=[message], max_tokens=8, temperature=0)))[0]

    answers = {ask(seed) for seed in (1, 2, 3)}
    assert len(answers) > 1


def test_the_image_token_typed_in_the_text_is_not_an_image(engine: TransformersEngine) -> None:
    """The processor's image placeholder in a message's text is removed: the answer still comes."""
    import hashlib

    token = engine._processor.image_token
    png = picture(1)
    image = Image(png, "image/png", hashlib.sha256(png).hexdigest())
    messages = [
        ChatMessage("system", f"Never say {token}."),
        ChatMessage("user", f"What is {token}?"),
        ChatMessage("assistant", f"{token} is a tag."),
        ChatMessage("user", f"Describe {token}{token} it.", (image,)),
    ]
    request = GenerationRequest("r3", messages=messages, max_tokens=3, temperature=0)
    _text, _prompt, completion = asyncio.run(collect(engine, request))
    assert completion == 3


def test_text_only_messages_on_a_vision_model(engine: TransformersEngine) -> None:
    spy = TowerSpy(engine)
    try:
        request = GenerationRequest("r2", messages=[ChatMessage("user", "Hello")], max_tokens=3, temperature=0)
        _text, _prompt, completion = asyncio.run(collect(engine, request))
    finally:
        spy.close()
    assert completion == 3 and spy.seen == []


def test_it_answers_over_v1_about_an_uploaded_image(vlm_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        f'[[models]]\nid = "tiny-llava"\nengine = "transformers"\nvision = true\nweights = "{vlm_dir}"\n'
        "context_length = 256\n"
    )
    settings = Settings(models=models, db=tmp_path / "a.db", model_dir=[str(vlm_dir.parent)], check_engines=False)
    png = picture(7)
    body = {
        "model": "tiny-llava",
        "max_tokens": 5,
        "temperature": 0,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
                    },
                ],
            }
        ],
    }

    async def run() -> tuple[Any, list[Any]]:
        async with AsyncTestClient(create_app(settings)) as client:
            engine = client.app.state.models.get("tiny-llava").engine
            spy = TowerSpy(engine)
            try:
                reply = await client.post("/v1/chat/completions", json=body)
            finally:
                spy.close()
            return reply, spy.seen

    reply, seen = asyncio.run(run())
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"]["completion_tokens"] == 5 and answer["usage"]["prompt_tokens"] > IMAGE_TOKENS
    # The server cleaned the PNG (a lossless re-encode of a small image): the same pixels arrive.
    assert len(seen) == 1 and torch.equal(seen[0], expected_pixels(vlm_dir, png))
