"""Issue 19, item 12, in headless Chromium: every page works under its Content-Security-Policy.

The browser reports each blocked script, style, image or connection as a
``securitypolicyviolation`` event (and a console error); a battle, a chat with feedback, the
image picker's preview, the leaderboard and the admin pages must cause none."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.server import ADMIN_TOKEN, ArenaServer, scripted_models_toml

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# A 1x1 PNG, for the picker's preview (a blob: URL).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("csp")
    (tmp / "models.toml").write_text(
        scripted_models_toml({"alpha": ["Alpha says **hi**.", "Again."], "beta": ["Beta says `x`.", "More."]})
    )
    running = ArenaServer(tmp, "--models", str(tmp / "models.toml"))
    yield running
    running.stop()


@pytest.fixture
def watched(page: Any) -> Iterator[Any]:
    """The page, recording CSP violations from the events and the console."""
    page.add_init_script(WATCH)
    page.console_csp = []
    page.on(
        "console",
        lambda m: page.console_csp.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield page


def _violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__violations")) + list(page.console_csp)


def test_a_battle_and_a_chat_work_under_the_csp(server: ArenaServer, watched: Any, tmp_path: Path) -> None:
    page = watched
    page.goto(server.base + "/")
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    page.set_input_files("input[type=file]", str(image))
    page.wait_for_selector(".image-preview:not([hidden]) img.image-thumb[src^='blob:']")
    page.click(".image-remove")
    page.fill("textarea[name=prompt]", "Hello?")
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector(".vote-button:not([disabled])", timeout=30_000)
    page.click(".vote-button >> text=Tie")
    page.wait_for_selector(".reveal")
    assert sorted(page.locator(".reveal .model-name").all_inner_texts()) == ["Scripted alpha", "Scripted beta"]
    assert _violations(page) == [] and page.errors == []

    page.goto(server.base + "/chat")
    page.fill("textarea[name=prompt]", "Hi there")
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector(".feedback button", timeout=30_000)
    page.click(".feedback button >> text=Good")
    page.wait_for_selector(".feedback .thanks")
    assert _violations(page) == [] and page.errors == []


def test_the_leaderboard_and_admin_pages_work_under_the_csp(server: ArenaServer, watched: Any) -> None:
    page = watched
    for path in ("/compare", "/leaderboard"):
        page.goto(server.base + path)
        assert _violations(page) == [], path
    page.goto(server.base + "/admin/login")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(server.base + "/admin")
    page.wait_for_selector("#models table")
    page.goto(server.base + "/admin/eval")
    page.goto(server.base + "/admin")
    page.click("text=Sign out")
    page.wait_for_url(server.base + "/admin/login")
    assert _violations(page) == [] and page.errors == []
