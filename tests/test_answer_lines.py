"""A completed answer keeps its lines: single newlines render as line breaks (issue 22), in
battles, compare and chat, live (the SSE ``set`` event) and when the page is loaded again."""

from __future__ import annotations

from app.web.render import answer_html
from tests.helpers.arena import Client, Node, csrf, final_sets, finish, parse_html

HAIKU = "An old silent pond\nA frog jumps into the pond\nSplash! Silence again"
LINES = HAIKU.split("\n")
BLOCKS = {"p", "li", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "tr"}


def rendered_lines(node: Node) -> list[str]:
    """The lines a reader sees in rendered HTML: text split at <br> and at block elements."""
    parts: list[str] = []

    def walk(n: Node) -> None:
        for child in n.children:
            if isinstance(child, str):
                parts.append(child.replace("\n", " "))  # a bare newline in HTML is a space
            elif child.tag == "br":
                parts.append("\n")
            else:
                block = child.tag in BLOCKS
                parts.append("\n" if block else "")
                walk(child)
                parts.append("\n" if block else "")

    walk(node)
    return [" ".join(line.split()) for line in "".join(parts).split("\n") if line.strip()]


def test_single_newlines_are_line_breaks() -> None:
    tree = parse_html(answer_html(HAIKU))
    assert rendered_lines(tree) == LINES
    assert len(tree.one("p").all("br")) == 2  # one paragraph, broken twice
    # A list written one item a line after a sentence, and a paragraph break, keep their shape.
    tree = parse_html(answer_html("Buy:\nEggs\nMilk\n\nThat is all."))
    assert rendered_lines(tree) == ["Buy:", "Eggs", "Milk", "That is all."]
    assert len(tree.all("p")) == 2
    # Code blocks keep their newlines as they are (no <br> inside <pre>).
    tree = parse_html(answer_html("```\na\nb\n```"))
    assert tree.one("pre").all("br") == [] and tree.one("pre").text() == "a\nb\n"


async def _start(client: Client, mode: str) -> str:
    form: dict[str, object] = {"prompt": "A haiku, please.", "mode": mode}
    if mode == "named":
        form["models"] = ["alpha", "beta"]
    elif mode == "direct":
        form["models"] = ["alpha"]
    r = await client.post("/battle", data=form, headers=await csrf(client))
    assert r.status_code == 200, r.text
    return parse_html(r.text).one(id_="battle").attrs["data-battle"]


async def test_battle_compare_and_chat_keep_the_lines(arena) -> None:
    async with arena({"alpha": [HAIKU], "beta": [HAIKU]}) as client:
        for mode in ("anony", "named", "direct"):
            battle_id = await _start(client, mode)
            sets = final_sets(await finish(client, battle_id))
            assert sets, mode
            for side, tree in sets.items():  # the live swap once the answer completes
                assert rendered_lines(tree.one("div", cls="md")) == LINES, (mode, side)
            page = parse_html((await client.get(f"/battle/{battle_id}")).text)  # the page loaded again
            answers = page.all("div", cls="md")
            assert len(answers) == len(sets) and all(rendered_lines(md) == LINES for md in answers), mode


async def test_a_past_turn_keeps_its_lines(arena) -> None:
    async with arena({"alpha": [HAIKU, "Second."], "beta": ["x"]}) as client:
        battle_id = await _start(client, "direct")
        await finish(client, battle_id)
        r = await client.post(f"/battle/{battle_id}/turn", data={"prompt": "More?"}, headers=await csrf(client))
        assert r.status_code == 200, r.text
        await finish(client, battle_id)
        page = parse_html((await client.get(f"/battle/{battle_id}")).text)
        past = page.one("div", cls="past")
        assert rendered_lines(past.one("div", cls="md")) == LINES
