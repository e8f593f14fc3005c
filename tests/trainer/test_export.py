"""Back to GGUF: the trained tiny model converts, loads in llama.cpp and answers greedily exactly
as transformers does; a LoRA adapter GGUF over the base GGUF matches the merged model."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from tests.trainer.conftest import need
from tests.trainer.test_sft import config
from trainer import data as d
from trainer.errors import TrainError
from trainer.templates import GEMMA

need("peft")
need("llama_cpp")


@pytest.fixture(scope="module")
def converter() -> Path:
    from trainer.convert import require_converter

    try:
        return require_converter()
    except TrainError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def prompts(data: Path, tokenizer) -> list[str]:
    """Each conversation's last question, rendered with the generation prompt."""
    return [
        d.render(tokenizer, GEMMA, c.messages[:-1], generation_prompt=True) for c in d.load_conversations(str(data))
    ]


def hf_greedy(folder: Path, texts: list[str]) -> list[list[int]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.checks import greedy_transformers

    model = AutoModelForCausalLM.from_pretrained(folder)
    return greedy_transformers(model.eval(), AutoTokenizer.from_pretrained(folder), texts)


def test_sft_run_round_trips_through_gguf(converter: Path, tiny_base: Path, tiny_data: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from trainer.checks import greedy_llamacpp
    from trainer.export import export_run
    from trainer.progress import Progress
    from trainer.sft import train_sft

    run = tmp_path / "run"
    train_sft(config(tiny_base, tiny_data, run), progress=Progress(io.StringIO()))
    result = export_run(run, "f16", tokenizer_pre="gpt-2")
    assert result["gguf"] == "model-f16.gguf" and (run / "model-f16.gguf").is_file()
    texts = prompts(tiny_data, AutoTokenizer.from_pretrained(run / "hf"))
    expected = hf_greedy(run / "hf", texts)
    assert any(expected)  # the trained model says something
    assert greedy_llamacpp(run / "model-f16.gguf", texts) == expected
    card = (run / "README.md").read_text()
    info = json.loads((run / "training.json").read_text())
    for needle in (str(tiny_base), info["data"]["sha256"][:16], "| Steps | 24 |", "model-f16.gguf", 'weights = "'):
        assert needle in card
    assert f"{info['train_loss_last']:.4f}" in card


def test_lora_adapter_gguf_over_the_base_gguf(
    converter: Path, tiny_base: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from trainer import convert
    from trainer.checks import greedy_llamacpp
    from trainer.progress import Progress
    from trainer.sft import train_sft

    run = tmp_path / "run"
    train_sft(config(tiny_base, tiny_data, run, lora=True, lora_r=8, lr=1e-2), progress=Progress(io.StringIO()))
    base_gguf = tmp_path / "base-f32.gguf"
    convert.convert_model(tiny_base, base_gguf, "f32", tokenizer_pre="gpt-2")
    adapter = tmp_path / "adapter.gguf"
    convert.convert_lora(run / "adapter", tiny_base, adapter, "f32")
    texts = prompts(tiny_data, AutoTokenizer.from_pretrained(run / "hf"))
    with_adapter = greedy_llamacpp(base_gguf, texts, lora=str(adapter))
    assert with_adapter == hf_greedy(run / "hf", texts)
    assert with_adapter != greedy_llamacpp(base_gguf, texts)  # the adapter changes the answers


def test_export_refuses_unfinished_runs_and_lora_without_a_gguf_base(
    tiny_base: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from trainer.export import export_run
    from trainer.progress import Progress
    from trainer.sft import train_sft

    run = tmp_path / "run"
    train_sft(config(tiny_base, tiny_data, run, steps=4, stop_after=2), progress=Progress(io.StringIO()))
    with pytest.raises(TrainError, match="has not finished"):
        export_run(run, "q8_0")
    lora = tmp_path / "lora"
    train_sft(config(tiny_base, tiny_data, lora, steps=2, lora=True), progress=Progress(io.StringIO()))
    with pytest.raises(TrainError, match="needs a base that came from a GGUF"):
        export_run(lora, "lora")


@pytest.mark.parametrize(("keep", "kept_file"), [(-10.0, "model-q4_k_m.gguf"), (10.0, "model-q8_0.gguf")])
def test_q4_k_m_is_kept_only_when_the_fine_tune_survives(
    converter: Path,
    tiny_base: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keep: float,
    kept_file: str,
) -> None:
    from trainer import export
    from trainer.progress import Progress
    from trainer.sft import train_sft

    run = tmp_path / "run"
    train_sft(config(tiny_base, tiny_data, run), progress=Progress(io.StringIO()))
    monkeypatch.setattr(export, "KEEP", keep)
    result = export.export_run(run, "q4_k_m", tokenizer_pre="gpt-2")
    check = result["q4_check"]
    assert check["samples"] == 8 and check["losses"]["f16"] < check["losses"]["base"]
    assert check["survived"] is (keep < 0)
    assert result["gguf"] == kept_file and sorted(p.name for p in run.glob("*.gguf")) == [kept_file]
    assert result["gguf_kind"] == ("q4_k_m" if keep < 0 else "q8_0")
