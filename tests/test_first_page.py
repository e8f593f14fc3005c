"""The first page says what it holds (issue 22): how many models an anonymous battle may draw,
and a link to the page on adding your own model, which the arena serves itself (offline)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from app.registry.spec import parse_models
from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import Client, Node, parse_html, serve
from tests.helpers.server import scripted_models_toml


def arena_size(tree: Node) -> tuple[int, str]:
    line = tree.one("p", cls="arena-size")
    return int(line.one("strong", cls="model-count").text()), " ".join(line.text().split())


async def test_the_battle_page_counts_the_models_and_links_the_guide(page_client: Client) -> None:
    tree = parse_html((await page_client.get("/")).text)
    count, line = arena_size(tree)
    assert count == 2 and line.startswith("2 models in this arena.")
    link = tree.one("p", cls="arena-size").one("a", cls="add-model")
    assert link.text() == "Add your own model" and link.attrs["href"] == "/docs/add-a-model"
    # The count is of models a battle may draw: a paused one leaves it, a resumed one comes back.
    await page_client.app.state.models.set_state("alpha", "paused")
    count, line = arena_size(parse_html((await page_client.get("/")).text))
    assert count == 1 and "1 model in this arena (a battle needs two)." in line
    await page_client.app.state.models.set_state("alpha", "active")
    assert arena_size(parse_html((await page_client.get("/")).text))[0] == 2


async def test_a_model_with_weight_zero_is_not_counted(tmp_path: Path) -> None:
    text = scripted_models_toml({"alpha": ["A."], "beta": ["B."], "gamma": ["C."]})
    text = text.replace('id = "gamma"', 'id = "gamma"\nweight = 0')  # a judge, say: never drawn
    (tmp_path / "models.toml").write_text(text)
    app = create_app(Settings(models=tmp_path / "models.toml", db=tmp_path / "a.db"))
    async with serve(app) as client:
        assert len(app.state.models.servable()) == 3
        assert arena_size(parse_html((await client.get("/")).text))[0] == 2


async def test_the_guide_is_served_with_an_example_for_each_kind(page_client: Client) -> None:
    tree = parse_html((await page_client.get("/")).text)
    href = tree.one("a", cls="add-model").attrs["href"]
    r = await page_client.get(href)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    doc = parse_html(r.text).one("article", cls="doc")
    assert doc.one("h1").text() == "Add your own model"
    blocks = [n for n in doc.children if isinstance(n, Node) and n.tag == "pre"]  # highlighting nests a <pre>
    examples = [tomllib.loads(pre.text())["models"][0] for pre in blocks]
    assert [e.get("engine", "llama.cpp") for e in examples] == ["llama.cpp", "transformers", "remote"]
    assert examples[0]["weights"].endswith(".gguf") and not examples[1]["weights"].endswith(".gguf")
    assert examples[2]["base_url"].startswith("https://") and examples[2]["api_key_env"].startswith("ARENA_REMOTE_")
    for pre in blocks:  # each example is a valid models-file entry
        assert len(parse_models(pre.text())) == 1
