"""The battle, compare and chat pages as htmx drives them, in-process over scripted engines."""

from __future__ import annotations

import json

from tests.helpers.arena import (
    Client,
    csrf,
    db_rows,
    final_sets,
    finish,
    parse_html,
    read_events,
    start_page_battle,
    vote_buttons,
)

# -- the pages ----------------------------------------------------------------------------


async def test_battle_page_offers_a_prompt_form(page_client: Client) -> None:
    r = await page_client.get("/")
    assert r.status_code == 200
    tree = parse_html(r.text)
    form = tree.one("form", cls="prompt-form")
    assert form.attrs["hx-post"] == "/battle" and form.attrs["hx-target"] == "#arena"
    assert form.one("input", name="mode").attrs["value"] == "anony"
    assert form.one("textarea", name="prompt").attrs["maxlength"] == "8000"
    scripts = [s.attrs["src"] for s in tree.all("script")]
    assert any("htmx-2" in s for s in scripts) and any("htmx-ext-sse" in s for s in scripts)
    token = page_client.cookies["csrftoken"]
    assert token in tree.one("body").attrs["hx-headers"]


async def test_battle_streams_then_votes_then_reveals(page_client: Client) -> None:
    battle_id, tree = await start_page_battle(page_client)
    current = tree.one("div", cls="current")
    assert current.attrs["sse-connect"] == f"/battle/{battle_id}/events"
    assert current.attrs["sse-close"] == "done"
    assert [h.text() for h in tree.all("h3")] == ["Model A", "Model B"]
    assert {a.attrs["id"] for a in tree.all("article")} == {"answer-a", "answer-b"}
    for body in tree.all("div", cls="body"):  # see test_every_streamed_token_reaches_the_page
        assert body.attrs["hx-swap"] == "innerHTML settle:0ms"
        assert body.one("div", cls="stream").attrs == {
            "class": "stream",
            "sse-swap": body.attrs["sse-swap"][0],
            "hx-swap": "beforeend",
        }
    buttons = vote_buttons(tree)
    assert len(buttons) == 4 and all("disabled" in b.attrs for b in buttons)

    events = await finish(page_client, battle_id)
    kinds = [e.event for e in events]
    assert set(kinds) <= {"a", "b", "a-set", "b-set", "done"} and kinds.count("done") == 1
    final = final_sets(events)
    texts = {side: " ".join(node.one("div", cls="md").text().split()) for side, node in final.items()}
    assert sorted(texts.values()) == ["Alpha says hello. one two", "Beta answers x."]
    alpha_side = next(s for s, t in texts.items() if t.startswith("Alpha"))
    md = final[alpha_side].one("div", cls="md")
    assert md.one("strong").text() == "hello" and len(md.all("li")) == 2  # rendered as Markdown
    done = parse_html(events[-1].data)
    assert len(vote_buttons(done)) == 4 and not any("disabled" in b.attrs for b in vote_buttons(done))
    assert [b.attrs["hx-vals"] for b in vote_buttons(done)] == [
        '{"winner": "model_a"}',
        '{"winner": "model_b"}',
        '{"winner": "tie"}',
        '{"winner": "tie (bothbad)"}',
    ]
    labels = ["A is better", "B is better", "Tie", "Both are bad"]
    assert all(label in b.text() for label, b in zip(labels, vote_buttons(done), strict=True))
    assert done.one("form", cls="prompt-form").attrs["hx-post"] == f"/battle/{battle_id}/turn"

    r = await page_client.post(f"/battle/{battle_id}/vote", data={"winner": "model_b"}, headers=await csrf(page_client))
    assert r.status_code == 200
    after = parse_html(r.text)
    battle = page_client.app.state.arena.live[battle_id]
    names = {"alpha": "Scripted alpha", "beta": "Scripted beta"}
    revealed = {n.attrs["data-side"]: n.text() for n in after.all("span", cls="model-name")}
    assert revealed == {side: names[m] for side, m in battle.models.items()}
    assert [h.text() for h in after.all("h3")] == [f"Model {s.upper()}: {names[battle.models[s]]}" for s in "ab"]
    assert after.all("form") == [] and after.all("textarea") == []  # the input is closed
    assert after.one("a", cls="button").attrs["href"] == "/"  # "New battle"
    assert after.one("a", cls="button").text() == "New battle"
    assert vote_buttons(after) == []
    vote = db_rows(page_client.app, "SELECT * FROM votes WHERE battle_id = ?", (battle_id,))
    assert [(v["winner"], v["mode"]) for v in vote] == [("model_b", "anony")]


async def test_show_battle_renders_a_finished_battle(page_client: Client) -> None:
    battle_id, _ = await start_page_battle(page_client)
    await finish(page_client, battle_id)
    r = await page_client.get(f"/battle/{battle_id}")
    tree = parse_html(r.text)
    assert "sse-connect" not in tree.one("div", cls="current").attrs  # complete: nothing to follow
    assert len(vote_buttons(tree)) == 4 and not any("disabled" in b.attrs for b in vote_buttons(tree))
    assert (await page_client.get("/battle/nope")).status_code == 404


async def test_csrf_is_required_on_forms(page_client: Client) -> None:
    await page_client.get("/")
    r = await page_client.post("/battle", data={"prompt": "Hello?", "mode": "anony"})
    assert r.status_code == 403
    r = await page_client.post("/battle", data={"prompt": "Hello?", "mode": "anony"}, headers={"x-csrftoken": "forged"})
    assert r.status_code == 403
    assert db_rows(page_client.app, "SELECT COUNT(*) FROM battles")[0][0] == 0
    battle_id, _ = await start_page_battle(page_client)
    await finish(page_client, battle_id)
    for action, data in [("vote", {"winner": "tie"}), ("stop", {}), ("regenerate", {}), ("turn", {"prompt": "x"})]:
        r = await page_client.post(f"/battle/{battle_id}/{action}", data=data)
        assert r.status_code == 403, action
    assert db_rows(page_client.app, "SELECT COUNT(*) FROM votes")[0][0] == 0
    # The JSON API has no CSRF token; it takes only JSON, which a browser sends cross-site
    # only after a CORS preflight.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        r = await page_client.post(f"/api/v1/battles/{battle_id}/vote", content=b'{"winner": "tie"}', headers=headers)
        assert r.status_code == 415, content_type
    assert db_rows(page_client.app, "SELECT COUNT(*) FROM votes")[0][0] == 0


async def test_second_turn_then_max_turns(arena) -> None:
    async with arena(max_turns=2) as c:
        battle_id, _ = await start_page_battle(c, "First?")
        await finish(c, battle_id)
        r = await c.post(f"/battle/{battle_id}/turn", data={"prompt": "Second?"}, headers=await csrf(c))
        tree = parse_html(r.text)
        assert [p.text() for p in tree.all("div", cls="prompt")] == ["First?", "Second?"]
        assert len(tree.all("div", cls="past")) == 1
        events = await finish(c, battle_id)
        done = parse_html(events[-1].data)
        assert done.all("form") == []  # at the limit: no follow-up form
        r = await c.post(f"/battle/{battle_id}/turn", data={"prompt": "Third?"}, headers=await csrf(c))
        assert r.status_code == 409
        assert r.headers["hx-retarget"] == "#flash"
        assert "at most 2 turns" in parse_html(r.text).one("div", cls="flash").text()
        engine = c.app.state.models.get("alpha").engine
        assert [len(req.messages) for req in engine.requests] == [1, 3]  # the history goes along


async def test_prompt_limits_on_the_page(arena) -> None:
    async with arena(max_prompt_chars=10) as c:
        r = await c.post("/battle", data={"prompt": "x" * 11, "mode": "anony"}, headers=await csrf(c))
        assert r.status_code == 400
        assert parse_html(r.text).one("div", cls="flash").text() == "The prompt is longer than 10 characters."
        r = await c.post("/battle", data={"prompt": "   ", "mode": "anony"}, headers=await csrf(c))
        assert r.status_code == 400
        assert db_rows(c.app, "SELECT COUNT(*) FROM battles")[0][0] == 0
        assert parse_html((await c.get("/")).text).one("textarea").attrs["maxlength"] == "10"


async def test_stop_keeps_the_answers_so_far(page_client: Client) -> None:
    app = page_client.app
    for model in ("alpha", "beta"):
        engine = app.state.models.get(model).engine
        engine.replies = [" ".join(f"w{i}" for i in range(40))]
        engine.delay = 0.02
    battle_id, _ = await start_page_battle(page_client)
    events = await read_events(app, f"/battle/{battle_id}/events", 8)
    assert any(e.event in ("a", "b") for e in events)
    r = await page_client.post(f"/battle/{battle_id}/stop", headers=await csrf(page_client))
    assert r.status_code == 200 and r.text == ""
    events = await finish(page_client, battle_id)
    sets = final_sets(events)
    for side in "ab":
        text = sets[side].one("div", cls="md").text().split()
        assert 0 < len(text) < 40 and text == [f"w{i}" for i in range(len(text))]
    rows = db_rows(app, "SELECT side, finish_reason FROM messages WHERE battle_id = ? AND side != ''", (battle_id,))
    assert sorted(tuple(r) for r in rows) == [("a", "stopped"), ("b", "stopped")]
    for model in ("alpha", "beta"):
        assert len(app.state.models.get(model).engine.aborted) == 1
    r = await page_client.post(f"/battle/{battle_id}/vote", data={"winner": "tie"}, headers=await csrf(page_client))
    assert r.status_code == 200  # a stopped answer is complete, so it can be voted on


async def test_regenerate_redraws_both_answers(page_client: Client) -> None:
    app = page_client.app
    for model in ("alpha", "beta"):
        app.state.models.get(model).engine.replies = [f"{model} first", f"{model} second"]
    battle_id, _ = await start_page_battle(page_client)
    await finish(page_client, battle_id)
    r = await page_client.post(f"/battle/{battle_id}/regenerate", headers=await csrf(page_client))
    assert r.status_code == 200
    events = await finish(page_client, battle_id)
    texts = sorted(node.text().strip() for node in final_sets(events).values())
    assert texts == ["alpha second", "beta second"]
    rows = db_rows(
        app, "SELECT content FROM messages WHERE battle_id = ? AND side != '' ORDER BY content", (battle_id,)
    )
    assert [r["content"] for r in rows] == ["alpha second", "beta second"]
    await page_client.post(f"/battle/{battle_id}/vote", data={"winner": "tie"}, headers=await csrf(page_client))
    r = await page_client.post(f"/battle/{battle_id}/regenerate", headers=await csrf(page_client))
    assert r.status_code == 409  # not after the vote
    assert "already has a vote" in parse_html(r.text).one("div", cls="flash").text()


async def test_compare_votes_are_named(page_client: Client) -> None:
    tree = parse_html((await page_client.get("/compare")).text)
    selects = tree.all("select", name="models")
    assert len(selects) == 2
    assert [o.attrs["value"] for o in selects[0].all("option")] == ["alpha", "beta"]
    r = await page_client.post(
        "/battle", data={"prompt": "Hi", "mode": "named", "models": ["beta", "alpha"]}, headers=await csrf(page_client)
    )
    tree = parse_html(r.text)
    battle_id = tree.one(id_="battle").attrs["data-battle"]
    assert [h.text() for h in tree.all("h3")] == ["Model A: Scripted beta", "Model B: Scripted alpha"]
    await finish(page_client, battle_id)
    r = await page_client.post(f"/battle/{battle_id}/vote", data={"winner": "model_a"}, headers=await csrf(page_client))
    assert r.status_code == 200
    assert parse_html(r.text).one("a", cls="button").attrs["href"] == "/compare"
    vote = db_rows(page_client.app, "SELECT mode, model_a, model_b, winner FROM votes")
    assert [tuple(v) for v in vote] == [("named", "beta", "alpha", "model_a")]
    counts = db_rows(page_client.app, "SELECT DISTINCT mode FROM pair_counts")
    assert [c["mode"] for c in counts] == ["named"]
    battle = db_rows(page_client.app, "SELECT mode, pair_prob FROM battles")[0]
    assert tuple(battle) == ("named", 1.0)
    for models in (["alpha", "alpha"], ["alpha"], ["alpha", "nope"]):
        r = await page_client.post(
            "/battle", data={"prompt": "Hi", "mode": "named", "models": models}, headers=await csrf(page_client)
        )
        assert r.status_code == 400, models


async def test_direct_chat_with_feedback(page_client: Client) -> None:
    tree = parse_html((await page_client.get("/chat")).text)
    assert [o.text() for o in tree.one("select", name="models").all("option")] == ["Scripted alpha", "Scripted beta"]
    r = await page_client.post(
        "/battle", data={"prompt": "Hi", "mode": "direct", "models": "beta"}, headers=await csrf(page_client)
    )
    tree = parse_html(r.text)
    battle_id = tree.one(id_="battle").attrs["data-battle"]
    assert tree.all("article") and [h.text() for h in tree.all("h3")] == ["Scripted beta"]
    events = await finish(page_client, battle_id)
    assert list(final_sets(events)) == ["a"]
    answer = final_sets(events)["a"]
    buttons = answer.one("div", cls="feedback").all("button")
    assert [b.text().split()[-1] for b in buttons] == ["Good", "Bad", "Flag"]
    assert vote_buttons(parse_html(events[-1].data)) == []  # no votes in a direct chat
    for button in buttons:
        assert button.attrs["hx-post"] == f"/battle/{battle_id}/feedback"
        vals = json.loads(button.attrs["hx-vals"])
        r = await page_client.post(f"/battle/{battle_id}/feedback", data=vals, headers=await csrf(page_client))
        assert r.status_code == 200 and parse_html(r.text).one("span", cls="thanks")
    rows = db_rows(page_client.app, "SELECT kind, message_id FROM feedback ORDER BY id")
    message_id = int(json.loads(buttons[0].attrs["hx-vals"])["message_id"])
    assert [tuple(r) for r in rows] == [("up", message_id), ("down", message_id), ("flag", message_id)]
    assert db_rows(page_client.app, "SELECT role FROM messages WHERE id = ?", (message_id,))[0][0] == "assistant"
    bad = [
        ({"message_id": str(message_id), "kind": "love"}, 400),
        ({"message_id": "x", "kind": "up"}, 400),
        ({"message_id": "99999", "kind": "up"}, 404),
    ]
    for data, status in bad:
        r = await page_client.post(f"/battle/{battle_id}/feedback", data=data, headers=await csrf(page_client))
        assert r.status_code == status, data
    r = await page_client.post(f"/battle/{battle_id}/vote", data={"winner": "model_a"}, headers=await csrf(page_client))
    assert r.status_code == 400  # a direct chat takes feedback, not votes
    assert db_rows(page_client.app, "SELECT COUNT(*) FROM feedback")[0][0] == 3
