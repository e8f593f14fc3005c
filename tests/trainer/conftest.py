"""Fixtures for the trainer tests: a tiny Gemma-style model and its data, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.trainer.tiny import build_tiny_gemma, conversations_jsonl


def need(module: str) -> None:
    """Skip when the train extra is missing, except in CI where `make test` installs it."""
    try:
        __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing: the test command installs the train extra")
        pytest.skip(f"{module} is not installed (pip install -e '.[train]')")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("transformers")
    return build_tiny_gemma(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conversations_jsonl(tmp_path_factory.mktemp("data") / "chats.jsonl")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Converted bases go to a temporary cache, never the user's; the converter stays shared."""
    from trainer.convert import converter_dir

    monkeypatch.setenv("ARENA_CONVERTER_DIR", str(converter_dir()))
    monkeypatch.setenv("ARENA_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


# The project turns warnings into errors; the training libraries warn about their own internals
# (deprecations between transformers, peft and trl). Those are not ours to fix: let them pass here.
LIBRARY_WARNINGS = [
    "ignore::FutureWarning:transformers.*",
    "ignore::FutureWarning:peft.*",
    "ignore::FutureWarning:trl.*",
    "ignore::DeprecationWarning:transformers.*",
    "ignore::DeprecationWarning:peft.*",
    "ignore::DeprecationWarning:trl.*",
    "ignore::UserWarning:trl.*",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            for spec in LIBRARY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))
