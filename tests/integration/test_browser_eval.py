"""Headless Chromium on the real server (scripted models and judge): a tournament started from
/admin/eval runs in the background, htmx polls its progress until it is done and shows its board;
the leaderboard's judge tab then shows the judge's board, swapped in by htmx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.eval.human_battles import MODELS_TOML
from tests.helpers.server import ArenaServer

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ADMIN = "eval-browser-token"
PLAYERS = ["model-x1", "model-y2", "model-z3"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("eval-browser")
    (tmp / "models.toml").write_text(MODELS_TOML)
    suites = tmp / "suites"
    suites.mkdir()
    lines = [{"id": f"p{i}", "prompt": f"Explain thing {i}."} for i in range(4)]
    (suites / "four.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    flags = ("--models", str(tmp / "models.toml"), "--admin-token", ADMIN, "--suites-dir", str(suites))
    server = ArenaServer(tmp, *flags)
    yield server
    server.stop()


def test_a_tournament_from_the_admin_page_then_the_judge_tab(server: ArenaServer, page: Any, artifacts: Path) -> None:
    page.goto(server.base + "/admin")
    page.fill("input[name=token]", ADMIN)
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector("#models")
    page.click("a[href='/admin/eval']")
    page.wait_for_selector("form.eval-form")
    for model in PLAYERS:
        page.check(f"input[name=models][value='{model}']")
    page.select_option("select[name=judge]", "judge")
    page.select_option("select[name=suite]", "four")
    page.click("form.eval-form button[type=submit]")
    # swapped in by the POST, then polled until the job is done (every second)
    page.wait_for_selector("#job .job-state[data-state=done]", timeout=30_000)
    steps = page.inner_text("#job [data-field=steps]")
    assert steps == "36/36", steps  # 4 prompts x (3 answers + 3 pairs x 2 orders)
    rows = page.locator("#job tbody tr").evaluate_all("rows => rows.map(r => r.dataset.model)")
    assert sorted(rows) == PLAYERS
    assert page.get_attribute("#job", "hx-trigger") is None  # polling stopped
    page.screenshot(path=str(artifacts / "admin-eval-done.png"), full_page=True)

    page.goto(server.base + "/leaderboard")
    page.click("nav.boards a[data-board='judge:judge']")
    page.wait_for_selector("p.judge-note")
    assert page.url.endswith("/leaderboard?board=judge&judge=judge")  # hx-push-url
    models = page.locator("#board tbody tr").evaluate_all("rows => rows.map(r => r.dataset.model)")
    assert sorted(models) == PLAYERS
    assert page.locator("nav.boards a[aria-selected=true]").inner_text() == "Judge: judge"
    assert "No rank correlation with the human board yet" in page.inner_text("p.judge-note")  # no human vote
    page.screenshot(path=str(artifacts / "leaderboard-judge-tab.png"), full_page=True)
    page.click("nav.boards a[data-board=human]")
    page.wait_for_selector("nav.boards a[data-board=human][aria-selected=true]")
    assert page.locator("p.judge-note").count() == 0
    assert page.errors == []
