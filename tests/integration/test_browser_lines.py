"""Headless Chromium: a completed answer keeps its lines (issue 22). A three-line answer shows as
three line boxes once it is rendered as Markdown, in a battle (before and after the vote), side by
side and in chat. Scripted models: the rendering is what is under test here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.browser import wait_until
from tests.helpers.server import ArenaServer, scripted_models_toml

pytestmark = [pytest.mark.integration, pytest.mark.browser]

POEM = "Roses are red\nViolets are blue\nSugar is sweet"

# The line boxes of each rendered answer: the distinct tops of the client rects of its text
# (each text node's own rects: one per line box it lies on), and its innerText's lines.
LINE_BOXES = """() => [...document.querySelectorAll('.answer .md')].map(md => {
    const tops = new Set();
    const walker = document.createTreeWalker(md, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top));
    }
    return {boxes: tops.size, lines: md.innerText.split('\\n').map(s => s.trim()).filter(Boolean)};
})"""


@pytest.fixture(scope="module")
def poem_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("lines")
    models = tmp / "models.toml"
    models.write_text(scripted_models_toml({"alpha": [POEM], "beta": [POEM]}))
    server = ArenaServer(tmp, "--models", str(models))
    yield server
    server.stop()


def completed_answers(page, base: str, path: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    page.goto(base + path)
    page.fill("textarea[name=prompt]", "A short poem, please.")
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector(".answer .md", timeout=60_000)
    wait_until(page, "document.querySelectorAll('.answer .body .stream').length === 0", timeout=60)
    return page.evaluate(LINE_BOXES)  # type: ignore[no-any-return]


@pytest.mark.parametrize("path,sides", [("/", 2), ("/compare", 2), ("/chat", 1)])
def test_a_completed_three_line_answer_shows_three_lines(poem_server: ArenaServer, page, path: str, sides: int) -> None:  # type: ignore[no-untyped-def]
    answers = completed_answers(page, poem_server.base, path)
    assert len(answers) == sides
    for answer in answers:
        assert answer == {"boxes": 3, "lines": POEM.split("\n")}, (path, answer)
    if path == "/":  # the vote swaps the battle in again, names revealed
        page.click(".vote-button >> text=Tie")
        page.wait_for_selector(".reveal")
        assert page.evaluate(LINE_BOXES) == [{"boxes": 3, "lines": POEM.split("\n")}] * 2
    assert page.errors == []
