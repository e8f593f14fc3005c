"""Into the arena: a LoRA fine-tune of the tiny model, exported as an adapter GGUF over its base
GGUF, registered at runtime, answers over /v1 and is drawn into a battle (real llama.cpp engine)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.trainer.conftest import need
from tests.trainer.test_export import converter  # noqa: F401  (fixture)
from tests.trainer.test_sft import config

need("peft")
need("llama_cpp")

TOKEN = {"Authorization": "Bearer admin-secret-token"}


@pytest.fixture(scope="module")
def models(converter: Path, tiny_base: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    from trainer import convert
    from trainer.progress import Progress
    from trainer.sft import train_sft

    folder = tmp_path_factory.mktemp("models")
    run = folder / "run"
    train_sft(config(tiny_base, tiny_data, run, lora=True, lora_r=8, lr=1e-2), progress=Progress(io.StringIO()))
    convert.convert_model(tiny_base, folder / "base.gguf", "f32", tokenizer_pre="gpt-2")
    convert.convert_lora(run / "adapter", tiny_base, folder / "adapter.gguf", "f32")
    return folder


def spec(model_id: str, models: Path, **extra: object) -> dict[str, object]:
    return {
        "id": model_id,
        "engine": "llama.cpp",
        "weights": str(models / "base.gguf"),
        "chat_format": "gemma",
        "context_length": 128,
        "defaults": {"temperature": 0.0, "max_tokens": 8},
        **extra,
    }


async def test_lora_result_answers_over_v1_and_battles(arena, models: Path) -> None:
    question = [{"role": "user", "content": "What is the capital of France?"}]
    async with arena({"alpha": ["Scripted."]}, admin_token="admin-secret-token", model_dir=[str(models)]) as c:
        r = await c.post(
            "/api/v1/admin/models", json=spec("tiny-sft", models, lora=str(models / "adapter.gguf")), headers=TOKEN
        )
        assert r.status_code == 201, r.text
        r = await c.post("/v1/chat/completions", json={"model": "tiny-sft", "messages": question, "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "Paris."
        # the base alone, on the same weights file, does not give the trained answer
        assert (await c.post("/api/v1/admin/models", json=spec("tiny-base", models), headers=TOKEN)).status_code == 201
        r = await c.post("/v1/chat/completions", json={"model": "tiny-base", "messages": question, "temperature": 0})
        assert r.json()["choices"][0]["message"]["content"] != "Paris."
        # and again with the adapter: contexts switching adapters do not leak into each other
        r = await c.post("/v1/chat/completions", json={"model": "tiny-sft", "messages": question, "temperature": 0})
        assert r.json()["choices"][0]["message"]["content"] == "Paris."
        assert (await c.post("/api/v1/admin/models/tiny-base/pause", headers=TOKEN)).status_code == 200
        battle = await c.post("/api/v1/battles", json={"prompt": "What is the capital of France?", "wait": True})
        assert battle.status_code == 201, battle.text
        answers = {battle.json()["turns"][0][side]["text"] for side in "ab"}
        assert answers == {"Paris.", "Scripted."}  # the only pair: the fine-tune against alpha


async def test_lora_outside_the_model_folders_or_not_gguf_is_refused(arena, models: Path, tmp_path: Path) -> None:
    outside = tmp_path / "adapter.gguf"
    outside.write_bytes((models / "adapter.gguf").read_bytes())
    (models / "notes.txt").write_text("not a model")
    async with arena({"alpha": ["Scripted."]}, admin_token="admin-secret-token", model_dir=[str(models)]) as c:
        r = await c.post("/api/v1/admin/models", json=spec("x", models, lora=str(outside)), headers=TOKEN)
        assert r.status_code == 400 and "outside the model folders" in r.text
        r = await c.post("/api/v1/admin/models", json=spec("y", models, lora=str(models / "notes.txt")), headers=TOKEN)
        assert r.status_code == 400 and "not a GGUF file" in r.text
