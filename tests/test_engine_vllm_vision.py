"""VLLMEngine with images, against the stand-in for vLLM's API of tests/test_engine_vllm.py: a
multimodal checkpoint makes the engine a vision engine, and an image reaches ``generate`` as vLLM
takes it (templated text plus ``multi_modal_data={"image": PIL image}``). Needs no vLLM, no GPU."""

from __future__ import annotations

import asyncio
import hashlib
import io
from types import SimpleNamespace
from typing import Any

from PIL import Image as PILImage

from app.engines.base import ChatMessage, Delta, GenerationRequest, Image
from app.engines.vllm import VLLMEngine
from tests.test_engine_vllm import PIECES, FakeLLM, FakeTokenizer, fake_api


class PartsTokenizer(FakeTokenizer):
    """A chat template that knows image parts, as a vision model's does."""

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool, tokenize: bool) -> str:
        def text(content: Any) -> str:
            if isinstance(content, str):
                return content
            return "".join("<image>" if p["type"] == "image" else p["text"] for p in content)

        return "".join(f"<{m['role']}>{text(m['content'])}" for m in messages) + "<assistant>"


class VisionLLM(FakeLLM):
    """A multimodal checkpoint: vLLM expands each <image> to 4 tokens in the prompt it reports."""

    @classmethod
    def from_engine_args(cls, args: Any) -> VisionLLM:
        return cls(args, model_config=SimpleNamespace(max_model_len=256, is_multimodal_model=True))

    def get_tokenizer(self) -> PartsTokenizer:
        return PartsTokenizer()

    async def generate(self, prompt: Any, sampling_params: Any, request_id: str) -> Any:
        self.generate_calls.append((prompt, sampling_params, request_id))
        expanded = len(prompt["prompt"]) + 3 * prompt["prompt"].count("<image>") if "prompt" in prompt else 0
        for i, (text, ids) in enumerate(PIECES):
            last = i == len(PIECES) - 1
            choice = SimpleNamespace(text=text, token_ids=ids, finish_reason="length" if last else None)
            ids_seen = list(range(expanded)) if i == 0 and expanded else None
            yield SimpleNamespace(request_id=request_id, prompt_token_ids=ids_seen, outputs=[choice], finished=last)
            await asyncio.sleep(0)


def engine(llm: type[FakeLLM]) -> VLLMEngine:
    api = fake_api()
    api = type(api)(api.engine_args, llm, api.sampling_params, api.delta, api.structured_outputs)
    built = VLLMEngine("/models/none-here", api_factory=lambda: api)
    asyncio.run(built.start())
    return built


def png(color: str) -> Image:
    out = io.BytesIO()
    PILImage.new("RGB", (24, 16), color).save(out, "PNG")
    data = out.getvalue()
    return Image(data, "image/png", hashlib.sha256(data).hexdigest())


def run(vllm: VLLMEngine, request: GenerationRequest) -> list[Delta]:
    async def go() -> list[Delta]:
        return [d async for d in vllm.generate(request)]

    return asyncio.run(go())


def test_a_multimodal_checkpoint_is_a_vision_engine() -> None:
    assert engine(VisionLLM).vision is True
    assert engine(FakeLLM).vision is False  # a text checkpoint


def test_images_reach_vllm_as_multi_modal_data() -> None:
    vllm = engine(VisionLLM)
    red = png("red")
    request = GenerationRequest("v1", messages=[ChatMessage("user", "What colour?", (red,))], max_tokens=5)
    deltas = run(vllm, request)
    (prompt, _params, request_id), *_ = vllm._engine.generate_calls
    assert request_id == "v1"
    assert prompt["prompt"] == "<user><image>What colour?<assistant>"
    picture = prompt["multi_modal_data"]["image"]
    assert isinstance(picture, PILImage.Image) and picture.size == (24, 16) and picture.getpixel((0, 0)) == (255, 0, 0)
    assert deltas[-1].prompt_tokens == len(prompt["prompt"]) + 3  # the expanded size vLLM reports


def test_several_images_go_as_a_list_in_order() -> None:
    vllm = engine(VisionLLM)
    messages = [
        ChatMessage("user", "First", (png("red"),)),
        ChatMessage("assistant", "ok"),
        ChatMessage("user", "Second", (png("blue"),)),
    ]
    run(vllm, GenerationRequest("v2", messages=messages, max_tokens=5))
    prompt = vllm._engine.generate_calls[0][0]
    assert [p.getpixel((0, 0)) for p in prompt["multi_modal_data"]["image"]] == [(255, 0, 0), (0, 0, 255)]
    assert prompt["prompt"].count("<image>") == 2


def test_text_requests_still_go_as_token_ids() -> None:
    vllm = engine(VisionLLM)
    run(vllm, GenerationRequest("v3", messages=[ChatMessage("user", "Hi")], max_tokens=5))
    assert set(vllm._engine.generate_calls[0][0]) == {"prompt_token_ids"}
