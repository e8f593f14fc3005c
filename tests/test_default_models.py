"""The embedded default models file offers the chat-tuned demo model once `make demo-model` built it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.registry.spec import load_models

ENTRY = '[[models]]\nid = "gemma-3-270m-chat"\nengine = "llama.cpp"\nweights = "bundled:gemma-3-270m"\nlora = "/x/adapter.gguf"\n'


def test_without_a_demo_model_the_defaults_are_the_two_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_CACHE", str(tmp_path))
    monkeypatch.delenv("ARENA_DEMO_MODEL", raising=False)
    assert [m.id for m in load_models(None)] == ["gemma-3-270m-greedy", "gemma-3-270m-t0.8"]


def test_a_built_demo_model_joins_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_CACHE", str(tmp_path))
    monkeypatch.delenv("ARENA_DEMO_MODEL", raising=False)
    (tmp_path / "demo-model").mkdir()
    (tmp_path / "demo-model" / "export.json").write_text(json.dumps({"models_entry": ENTRY}))
    demo = load_models(None)[-1]
    assert (demo.id, demo.lora) == ("gemma-3-270m-chat", "/x/adapter.gguf")


def test_a_broken_export_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_CACHE", str(tmp_path))
    monkeypatch.delenv("ARENA_DEMO_MODEL", raising=False)
    (tmp_path / "demo-model").mkdir()
    (tmp_path / "demo-model" / "export.json").write_text("{not json")
    assert len(load_models(None)) == 2


def test_an_empty_demo_setting_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_CACHE", str(tmp_path))
    (tmp_path / "demo-model").mkdir()
    (tmp_path / "demo-model" / "export.json").write_text(json.dumps({"models_entry": ENTRY}))
    monkeypatch.setenv("ARENA_DEMO_MODEL", "")
    assert len(load_models(None)) == 2
