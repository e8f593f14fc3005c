"""Identity leaks: an anonymous answer that names its own model flags the battle, and its vote
leaves the default board (the include_flagged option counts it again). The matching rules first,
then the arena in-process over scripted engines."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from app.arena.identity import Identity, find_leak, id_stem, identity_of
from app.registry.spec import ModelSpec
from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import Client, db_rows, serve

GEMMA = ModelSpec(
    id="gemma-3-270m-greedy",
    name="Gemma 3 270M (greedy)",
    metadata={"organization": "Google", "family": "Gemma", "aliases": ["Gemmy"]},
)
LLAMA = ModelSpec(id="llama-3-8b", metadata={"organization": "Meta", "family": "Llama", "aliases": ["LLaMA 3"]})
ALPHA = ModelSpec(id="alpha", name="Scripted alpha", metadata={"organization": "Test Org"})


def test_names_come_from_the_models_file() -> None:
    assert identity_of(GEMMA) == Identity(("Gemma", "Gemmy", "Gemma 3 270M (greedy)"), ("Google",))
    # no family: the id's stem is a self-only name
    bare = ModelSpec(id="qwen2.5-7b", metadata={"organization": "Alibaba"})
    assert identity_of(bare) == Identity((), ("Alibaba", "qwen"))
    assert identity_of(ALPHA, ["Al"]) == Identity(("Scripted alpha",), ("Test Org", "alpha"))  # "Al": too short
    assert (id_stem("gemma-3-270m"), id_stem("3b-model")) == ("gemma", "")


@pytest.mark.parametrize(
    ("spec", "text", "found"),
    [
        (GEMMA, "As Gemma, I think the answer is 4.", "Gemma"),
        (GEMMA, "Hi! I'm gemma3, a small model.", "gemma"),  # a digit may follow a name
        (GEMMA, "Call me Gemmy.", "Gemmy"),
        (GEMMA, "I am a large language model, trained by Google.", "Google"),
        (GEMMA, "Sure. As a Google model, I cannot browse.", "Google"),
        (GEMMA, "Google's Android was developed by Google.", None),  # the organization, not as a self-reference
        (GEMMA, "Search engines such as Google index pages.", None),
        (GEMMA, "Gemmas are precious stones.", None),  # not inside a longer word
        (LLAMA, "I'm LLaMA   3, here to help.", "LLaMA   3"),
        (LLAMA, "The meta data is stored in a header.", None),
        (LLAMA, "I am Meta AI.", "Meta"),
        (ALPHA, "Alpha says hello.", None),  # the id's stem only as a self-reference
        (ALPHA, "I am alpha.", "alpha"),
        (ALPHA, "Scripted Alpha here.", "Scripted Alpha"),
    ],
)
def test_what_counts_as_a_leak(spec: ModelSpec, text: str, found: str | None) -> None:
    assert find_leak(text, identity_of(spec)) == found


SELF_ONLY = Identity((), ("Google", "gemma"))  # no family: the organization and the stem count only as self-references


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("As Gemma, I think the answer is 4.", "Gemma"),
        ("I am a Google model.", "Google"),
        ("I was trained by Google.", "Google"),
        ("As Gemma 3, my answer is 4.", "Gemma"),
        ("As Google's documentation explains, the API is free.", None),
        ("As Google announced in 2023, the model is open.", None),
        ("I'm the Google fan here.", None),
        ("When I was a student I used Gmail, built by Google.", None),
    ],
)
def test_self_references_need_the_first_person(text: str, found: str | None) -> None:
    assert find_leak(text, SELF_ONLY) == found


def test_no_names_no_leak() -> None:
    assert find_leak("I am Gemma", Identity()) is None


MODELS = """
[[models]]
id = "gemma-x"
name = "Scripted G"
engine = "scripted"
script = ["As Gemma, I think the answer is 4."]
metadata = { organization = "Google", family = "Gemma" }

[[models]]
id = "beta"
name = "Scripted beta"
engine = "scripted"
script = ["Four."]
metadata = { organization = "Test Org" }
"""


def _app(tmp_path: Path, **settings: Any) -> Any:
    models = tmp_path / "models.toml"
    models.write_text(textwrap.dedent(MODELS))
    overrides = {"generation_rate": "100000/1", "model_rate": "100000/1", "battle_rate": "1000/1", **settings}
    return create_app(Settings(models=models, db=tmp_path / "arena.db", **overrides))  # type: ignore[arg-type]


async def _battle(c: Client, mode: str = "anony") -> str:
    body: dict[str, Any] = {"prompt": "What is 2 + 2?", "wait": True, "mode": mode}
    if mode == "named":
        body["models"] = ["gemma-x", "beta"]
    r = await c.post("/api/v1/battles", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _vote_for_gemma(c: Client, battle_id: str) -> None:
    row = db_rows(c.app, "SELECT model_a FROM battles WHERE id = ?", (battle_id,))[0]
    winner = "model_a" if row["model_a"] == "gemma-x" else "model_b"
    r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": winner})
    assert r.status_code == 200, r.text


async def _board(c: Client, **params: str) -> dict[str, Any]:
    r = await c.get("/api/v1/leaderboard", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_self_naming_answer_flags_the_battle_and_its_vote_leaves_the_default_board(tmp_path: Path) -> None:
    async with serve(_app(tmp_path)) as c:
        leaked = await _battle(c)
        assert db_rows(c.app, "SELECT flags FROM battles WHERE id = ?", (leaked,))[0]["flags"] == "identity"
        await _vote_for_gemma(c, leaked)
        vote = db_rows(c.app, "SELECT flags FROM votes WHERE battle_id = ?", (leaked,))[0]
        assert vote["flags"] == "identity"
        assert db_rows(c.app, "SELECT COUNT(*) FROM pair_counts WHERE mode = 'anony'")[0][0] == 0
        default = await _board(c)
        assert default["total_votes"] == 0 and default["models"] == []
        counted = await _board(c, include_flagged="true")
        assert counted["total_votes"] == 1 and counted["options"]["include_flagged"] is True
        assert {m["model"]: m["votes"] for m in counted["models"]} == {"gemma-x": 1, "beta": 1}
        assert default["options"]["include_flagged"] is False
        # the page's checkbox is the same option
        page = await c.get("/leaderboard", params={"include_flagged": "1"})
        assert 'data-model="gemma-x"' in page.text
        assert 'data-model="gemma-x"' not in (await c.get("/leaderboard")).text


async def test_named_battles_and_the_setting_off_are_not_checked(tmp_path: Path) -> None:
    async with serve(_app(tmp_path)) as c:
        named = await _battle(c, "named")  # the voter picked the models: nothing to give away
        assert db_rows(c.app, "SELECT flags FROM battles WHERE id = ?", (named,))[0]["flags"] == ""
    other = tmp_path / "off"
    other.mkdir()
    async with serve(_app(other, identity_check=False)) as c:
        battle = await _battle(c)
        assert db_rows(c.app, "SELECT flags FROM battles WHERE id = ?", (battle,))[0]["flags"] == ""
        await _vote_for_gemma(c, battle)
        assert (await _board(c))["total_votes"] == 1
