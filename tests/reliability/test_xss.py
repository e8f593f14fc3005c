"""XSS in headless Chromium: payloads in model output, display names, metadata (admin API) and an
imported battle file render inert on every page (battle before and after the vote, compare, chat,
an imported battle, the leaderboard, the admin page): ``window.__xss`` stays unset, no dialog
opens, and each payload is shown as text in the element it belongs to."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.browser import wait_until
from tests.helpers.crash import OPEN_RATES
from tests.helpers.server import ROOT, ArenaServer

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ADMIN = "xss-admin-token-0"
SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
SVG = '"><svg onload=window.__xss=1>'
ALERT = "'><img src=x onerror=alert(1)>"
LINK = "[click me](javascript:window.__xss=1)"
REPLY = f"Look: {SCRIPT} and {IMG} then {SVG} and {ALERT}\n\n{LINK} <b>raw</b>"

NAME_A = f"{SVG} A"
NAME_B = f"{ALERT} B"
META_A = {"organization": SCRIPT, "license": IMG, "link": "javascript:window.__xss=1"}
META_B = {"organization": SVG, "license": ALERT, "parameters": SCRIPT}
# an imported battle: payloads as model names (not registered: shown by id), prompt and answers
IMPORTED = {"model_a": SCRIPT, "model_b": IMG, "winner": "model_a"}
PROMPT = f"Imported {SVG} prompt"
ANSWERS = {"a": f"answer a {ALERT}", "b": f"answer b {SCRIPT}"}


def models_toml() -> str:
    meta = ", ".join(f"{k} = {json.dumps(v)}" for k, v in META_A.items())
    return (
        f'[[models]]\nid = "evil-a"\nname = {json.dumps(NAME_A)}\nengine = "scripted"\ncontext_length = 64\n'
        f"script = [{json.dumps(REPLY)}]\nmetadata = {{ {meta} }}\n"
    )


def battle_file(tmp: Path) -> Path:
    conversation = {
        side: [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": ANSWERS[side]}] for side in "ab"
    }
    rows = [
        {**IMPORTED, "conversation_a": conversation["a"], "conversation_b": conversation["b"]},
        {"model_a": "evil-a", "model_b": SCRIPT, "winner": "tie"},
        {"model_a": "evil-b", "model_b": IMG, "winner": "model_b"},
        {"model_a": "evil-a", "model_b": "evil-b", "winner": "model_a"},
    ]
    path = tmp / "battles.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("xss")
    (tmp / "models.toml").write_text(models_toml())
    db = tmp / "arena.db"
    imported = subprocess.run(
        [sys.executable, "-m", "app", "battles", "import", str(battle_file(tmp)), "--db", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
    flags = ("--models", str(tmp / "models.toml"), "--admin-token", ADMIN, *OPEN_RATES)
    server = ArenaServer(tmp, *flags)
    auth = {"authorization": f"Bearer {ADMIN}"}
    spec = {"id": "evil-b", "name": NAME_B, "engine": "scripted", "script": [REPLY], "metadata": META_B}
    added = httpx.post(f"{server.base}/api/v1/admin/models", json=spec, headers=auth, timeout=30)
    assert added.status_code == 201, added.text
    yield server
    server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def inert(page: Any, where: str) -> None:
    """Nothing ran: give an injected handler time to fire, then look."""
    time.sleep(0.3)
    assert page.evaluate("window.__xss") is None, where
    assert page.dialogs == [], (where, page.dialogs)
    assert page.locator("main script, main img, main b, main svg:not(.plot)").count() == 0, where
    hrefs = [a.get_attribute("href") or "" for a in page.locator("a").all()]
    assert not any(re.match(r"\s*javascript:", h, re.I) for h in hrefs), (where, hrefs)


def texts(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def answer_shown(page: Any, count: int = 2) -> None:
    """Each complete answer shows the whole reply as text, the javascript: link included."""
    shown = texts(page, ".answer .md")
    assert len(shown) == count, shown
    for md in shown:
        assert md.split() == REPLY.split(), md


def play(page: Any, base: str, path: str, answers: int = 2) -> str:
    page.goto(base + path)
    page.fill("textarea[name=prompt]", f"Prompt {SCRIPT}")
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector(".answer .md", timeout=60_000)
    wait_until(page, "document.querySelectorAll('.answer .body .stream').length === 0")
    assert texts(page, ".turn.current .prompt") == [f"Prompt {SCRIPT}"]
    answer_shown(page, answers)
    return str(page.get_attribute("#battle", "data-battle"))


def revealed(page: Any) -> list[str]:
    return [str(page.locator(f".reveal .model-name[data-side={s}]").inner_text()) for s in "ab"]


def test_battle_before_and_after_the_vote(server: ArenaServer, page: Any) -> None:
    battle_id = play(page, server.base, "/")
    inert(page, "battle before the vote")
    assert texts(page, ".answer h3") == ["Model A", "Model B"]
    page.goto(f"{server.base}/battle/{battle_id}")  # a reload renders the stored answers
    answer_shown(page)
    inert(page, "battle page reloaded")
    page.click(".vote-button >> text=Tie")
    page.wait_for_selector(".reveal")
    inert(page, "battle after the vote")
    names = revealed(page)
    assert sorted(names) == sorted([NAME_A, NAME_B])
    assert texts(page, ".answer h3") == [f"Model A: {names[0]}", f"Model B: {names[1]}"]
    page.goto(f"{server.base}/battle/{battle_id}")
    inert(page, "voted battle page")
    assert revealed(page) == names
    assert page.errors == []


def test_compare_and_chat(server: ArenaServer, page: Any) -> None:
    page.goto(server.base + "/compare")
    assert sorted(texts(page, "select[name=models] >> nth=0 >> option")) == sorted([NAME_A, NAME_B])
    play(page, server.base, "/compare")
    inert(page, "compare")
    assert sorted(texts(page, ".answer h3")) == sorted([f"Model A: {NAME_A}", f"Model B: {NAME_B}"])
    page.goto(server.base + "/chat")
    assert sorted(texts(page, "select[name=models] option")) == sorted([NAME_A, NAME_B])
    play(page, server.base, "/chat", answers=1)
    inert(page, "chat")
    assert texts(page, ".answer h3")[0] in (NAME_A, NAME_B)
    assert page.errors == []


def imported_battle_id(server: ArenaServer) -> str:
    from app.store.transfer import _battle_id

    row = json.loads((server.log.parent / "battles.json").read_text())[0]
    return _battle_id(row)


def test_imported_battle(server: ArenaServer, page: Any) -> None:
    page.goto(f"{server.base}/battle/{imported_battle_id(server)}")
    inert(page, "imported battle")
    assert texts(page, ".prompt") == [PROMPT]
    assert texts(page, ".answer .md") == [ANSWERS["a"], ANSWERS["b"]]
    assert revealed(page) == [SCRIPT, IMG]  # unregistered models: named by their ids
    assert texts(page, ".answer h3") == [f"Model A: {SCRIPT}", f"Model B: {IMG}"]
    assert page.errors == []


def test_leaderboard(server: ArenaServer, page: Any) -> None:
    page.goto(server.base + "/leaderboard")
    page.wait_for_selector("table.leaderboard")
    inert(page, "leaderboard")
    rows = {
        str(row.get_attribute("data-model")): [c.strip() for c in row.locator("td").all_inner_texts()]
        for row in page.locator("table.leaderboard tbody tr").all()
    }
    assert {SCRIPT, IMG, "evil-a", "evil-b"} <= set(rows), rows
    for model, name, meta in (("evil-a", NAME_A, META_A), ("evil-b", NAME_B, META_B)):
        assert rows[model][1].startswith(name), rows[model]
        assert rows[model][5:7] == [meta["organization"], meta["license"]], rows[model]
    assert rows[SCRIPT][1].startswith(SCRIPT) and rows[IMG][1].startswith(IMG)
    organizations = texts(page, "select[name=organization] option")
    assert {META_A["organization"], META_B["organization"]} <= set(organizations), organizations
    labels = page.locator("svg.plot-intervals text").all_text_contents()
    assert {NAME_A, NAME_B, SCRIPT, IMG} <= set(labels), labels
    assert page.errors == []


def test_admin_page(server: ArenaServer, page: Any) -> None:
    page.goto(server.base + "/admin")
    page.fill("input[name=token]", ADMIN)
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector("#models")
    inert(page, "admin")
    names = texts(page, "#models tbody td:first-child strong")
    assert sorted(names) == sorted([NAME_A, NAME_B])
    page.locator("#models tbody tr", has_text="evil-a").locator("button", has_text="pause").click()
    wait_until(page, "document.querySelector('#models').textContent.includes('paused')")
    inert(page, "admin after an action")
    assert page.errors == []
