"""Each screen's context builder, called directly: no HTTP, no templates. And a missing vendored
static file stops the app at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.arena.live import LiveBattle
from app.arena.service import Limits
from app.engines.llamacpp import CpuBudget
from app.registry.core import Registry
from app.registry.spec import ModelSpec
from app.server import create_app
from app.settings import Settings
from app.web import views
from app.web.screens import (
    ArenaScreen,
    ModelChoice,
    admin_login_screen,
    admin_screen,
    arena_screen,
    battle_view,
)

LIMITS = Limits(max_prompt_chars=123, max_turns=4)


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    models = Registry(budget=CpuBudget(1), memory_budget=3 * 1024 * 1024)
    await models.start(
        [
            ModelSpec(id="alpha", name="Alpha One", engine="scripted"),
            ModelSpec(id="beta", name="Beta Two", engine="scripted"),
            ModelSpec(id="gamma", engine="scripted"),
        ]
    )
    yield models
    await models.close()


async def test_start_screen_offers_the_models_that_can_answer(registry: Registry) -> None:
    registry.get("gamma").state = "down"
    screen = arena_screen("named", None, registry, LIMITS)
    assert isinstance(screen, ArenaScreen)
    assert (screen.template, screen.nav, screen.mode, screen.battle) == ("compare.html", "compare", "named", None)
    assert screen.models == [ModelChoice("alpha", "Alpha One"), ModelChoice("beta", "Beta Two")]
    assert (screen.view.max_turns, screen.view.max_prompt_chars, screen.view.new_url) == (4, 123, "/compare")
    assert screen.view.reveal == {}


async def test_anonymous_battle_names_the_models_only_after_the_vote(registry: Registry) -> None:
    battle = LiveBattle("b1", "anony", {"a": "beta", "b": "alpha"})
    before = arena_screen("anony", battle, registry, LIMITS)
    assert (before.template, before.nav, before.view.new_url) == ("battle.html", "battle", "/")
    assert before.view.reveal == {}
    battle.voted = True
    assert arena_screen("anony", battle, registry, LIMITS).view.reveal == {"a": "Beta Two", "b": "Alpha One"}


def test_named_battles_and_chats_name_their_models_from_the_start() -> None:
    names = {"alpha": "Alpha One"}
    named = battle_view(LiveBattle("b2", "named", {"a": "alpha", "b": "removed"}), "named", names, LIMITS)
    assert named.reveal == {"a": "Alpha One", "b": "removed"}  # a model since removed keeps its id
    chat = battle_view(LiveBattle("b3", "direct", {"a": "alpha"}), "direct", names, LIMITS)
    assert (chat.reveal, chat.new_url) == ({"a": "Alpha One"}, "/chat")


async def test_admin_screen_holds_plain_rows(registry: Registry) -> None:
    registry.get("beta").state = "paused"
    await registry.unload("gamma")
    registry.get("alpha").memory = 2 * 1024 * 1024  # as a loaded GGUF would count
    screen = admin_screen(registry, error="Nope.")
    assert (screen.nav, screen.login, screen.error) == ("admin", False, "Nope.")
    assert (screen.memory_in_use_mb, screen.memory_budget_mb) == (2, 3)
    rows = {r.id: r for r in screen.models}
    assert list(rows) == ["alpha", "beta", "gamma"]
    assert (rows["alpha"].name, rows["alpha"].engine, rows["alpha"].memory_mb) == ("Alpha One", "scripted", 2.0)
    assert rows["alpha"].actions == ["pause", "unload", "remove"]
    assert rows["beta"].actions == ["resume", "unload", "remove"]
    assert (rows["gamma"].loaded, rows["gamma"].actions) == (False, ["pause", "load", "remove"])


def test_admin_login_screen() -> None:
    assert (admin_login_screen(enabled=False).login, admin_login_screen(enabled=False).enabled) == (True, False)
    assert admin_login_screen(enabled=True).models == []


def test_a_context_is_a_dataclass() -> None:
    assert views.context_of(admin_login_screen(True))["enabled"] is True
    with pytest.raises(TypeError, match="dataclass"):
        views.context_of({"nav": "admin"})


def test_missing_vendored_htmx_stops_the_start_naming_make_static(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "htmx-ext-sse-2.2.4.min.js").write_text("")  # the extension is there, htmx is not
    monkeypatch.setattr(views, "VENDOR", tmp_path)
    views.environment.cache_clear()
    try:
        with pytest.raises(views.StaticMissing, match="`make static`") as info:
            create_app(Settings(db=tmp_path / "arena.db"))
        assert "htmx is not installed" in str(info.value)
    finally:
        views.environment.cache_clear()
    assert views.vendor_file("htmx", views.HERE / "static" / "vendor").startswith("/static/vendor/htmx-2.")
