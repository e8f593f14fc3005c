"""The leaderboard page in headless Chromium: sort, filter, switch category, style toggle, plots."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.helpers.browser import wait_until
from tests.helpers.server import ArenaServer
from tests.test_leaderboard_app import _battles

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("lb")
    battles = tmp / "b.jsonl"
    battles.write_text("".join(json.dumps(r) + "\n" for r in _battles(600, seed=3)))
    subprocess.run(
        [sys.executable, "-m", "app", "battles", "import", str(battles), "--db", str(tmp / "arena.db")],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    models = tmp / "models.toml"
    models.write_text(
        "\n".join(
            f'[[models]]\nid = "{m}"\nengine = "scripted"\nmetadata = {{ organization = "{org}", license = "{lic}", parameters = "{size}" }}\n'
            for m, org, lic, size in [
                ("m-strong", "Org A", "MIT", "70B"),
                ("m-mid", "Org B", "Apache-2.0", "7B"),
                ("m-weak", "Org A", "MIT", "1B"),
                ("m-code", "Org C", "Apache-2.0", "13B"),
            ]
        )
    )
    s = ArenaServer(tmp, "--models", str(models))
    yield s
    s.stop()


@pytest.fixture
def page(browser: Any, server: ArenaServer) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    yield page
    page.close()


def _settled(page) -> None:
    """Wait until htmx has finished swapping and settling (new content is live only then)."""
    wait_until(page, "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')")


def _models(page) -> list[str]:
    return page.eval_on_selector_all("table.leaderboard tbody tr", "rows => rows.map(r => r.dataset.model)")


def test_sort_filter_category_and_plots(server: ArenaServer, page, artifacts: Path) -> None:
    page.goto(server.base + "/leaderboard")
    assert _models(page)[0] == "m-strong" and len(_models(page)) == 4
    assert page.locator(".summary strong").first.inner_text() == "540"

    # sort by model name (htmx swaps the board and pushes the URL)
    page.click("th[data-key=model] a")
    page.wait_for_url("**sort=model**")
    wait_until(page, "document.querySelector('tbody tr').dataset.model === 'm-code'")
    _settled(page)
    assert _models(page) == sorted(_models(page))
    page.click("th[data-key=model] a")  # again: descending
    wait_until(page, "document.querySelector('tbody tr').dataset.model === 'm-weak'")
    _settled(page)

    # filter by license, then by size
    page.select_option("select[name=license]", "MIT")
    wait_until(page, "document.querySelectorAll('tbody tr').length === 2")
    _settled(page)
    assert set(_models(page)) == {"m-strong", "m-weak"}
    page.select_option("select[name=size]", "small")
    wait_until(page, "document.querySelectorAll('tbody tr').length === 1")
    _settled(page)
    assert _models(page) == ["m-weak"]
    page.goto(server.base + "/leaderboard")
    assert len(_models(page)) == 4

    # switch category: the tab is selected and the vote total drops
    page.click("a[role=tab][data-category=coding]")
    page.wait_for_selector("a[role=tab][data-category=coding][aria-selected=true]")
    _settled(page)
    coding_votes = int(page.locator(".summary strong").first.inner_text())
    assert 0 < coding_votes < 540

    # style control toggle
    page.check("input[name=style_control]")
    page.wait_for_selector(".coefficients")
    assert "tokens" in page.locator(".coefficients").inner_text()

    # the plots: intervals (one dot per model), and two heatmaps with a cell per pair
    assert page.locator("svg.plot-intervals circle.score").count() == 4
    assert page.locator("svg.plot-heatmap").count() == 2
    assert page.locator("svg.plot-heatmap").first.locator("rect.cell").count() == 16
    page.screenshot(path=str(artifacts / "leaderboard.png"), full_page=True)
