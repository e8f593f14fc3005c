"""Whole battles on the real server (`arena serve`, the two bundled Gemma presets): through the
JSON API, and through the HTML endpoints exactly as htmx calls them."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers.arena import Node, parse_html, parse_sse
from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

IDS = {"gemma-3-270m-greedy", "gemma-3-270m-t0.8"}
NAMES = {"gemma-3-270m-greedy": "Gemma 3 270M (greedy)", "gemma-3-270m-t0.8": "Gemma 3 270M (temperature 0.8)"}
PROMPT = "Name three colours of the rainbow, one per line."


def test_battle_through_the_json_api(arena_server: ArenaServer) -> None:
    with httpx.Client(base_url=arena_server.base, timeout=180) as http:
        r = http.post("/api/v1/battles", json={"prompt": PROMPT, "wait": True})
        assert r.status_code == 201, r.text
        battle_id = r.json()["id"]
        (turn,) = r.json()["turns"]
        for side in "ab":
            assert turn[side]["text"].strip(), turn
            assert turn[side]["finish_reason"] is None and turn[side]["error"] is None  # until the vote (issue 19)

        state = http.get(f"/api/v1/battles/{battle_id}").json()
        assert state["models"] is None and state["status"] == "open" and state["turns"] == r.json()["turns"]
        assert not any(i in json.dumps(state) for i in IDS)

        events = parse_sse(http.get(f"/api/v1/battles/{battle_id}/events").text)  # replayed, not redone
        assert [e.event for e in events] == ["a-set", "b-set", "done"]
        assert [json.loads(e.data)["text"] for e in events[:2]] == [turn["a"]["text"], turn["b"]["text"]]

        r = http.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Now one more colour.", "wait": True})
        assert r.status_code == 201 and r.json()["turn"] == 2 and len(r.json()["turns"]) == 2

        r = http.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_b"})
        assert r.status_code == 200
        pair = r.json()
        assert {pair["model_a"], pair["model_b"]} == IDS
        assert http.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"}).status_code == 409
        state = http.get(f"/api/v1/battles/{battle_id}").json()
        assert state["status"] == "voted" and state["models"] == {"a": pair["model_a"], "b": pair["model_b"]}


def test_battle_through_the_pages_as_htmx_calls_them(arena_server: ArenaServer) -> None:
    with httpx.Client(base_url=arena_server.base, timeout=180) as http:
        page = http.get("/")
        token = http.cookies["csrftoken"]
        tree = parse_html(page.text)
        assert json.loads(tree.one("body").attrs["hx-headers"]) == {"x-csrftoken": token}
        form = tree.one("form", cls="prompt-form")
        htmx = {"HX-Request": "true", "HX-Current-URL": arena_server.base + "/", "x-csrftoken": token}

        fields = {n.attrs["name"]: n.attrs.get("value", "") for n in form.all("input")}
        r = http.post(form.attrs["hx-post"], data={**fields, "prompt": PROMPT}, headers={**htmx, "HX-Target": "arena"})
        assert r.status_code == 200
        arena = parse_html(r.text)
        assert arena.one("section", id_="arena")
        stream = arena.one("div", cls="current")
        assert [h.text() for h in arena.all("h3")] == ["Model A", "Model B"]

        # What htmx-ext-sse does: one EventSource on sse-connect, swapping by event name.
        kinds: list[str] = []
        buffer = ""
        with http.stream("GET", stream.attrs["sse-connect"], headers={"Accept": "text/event-stream"}) as sse:
            assert sse.headers["content-type"].startswith("text/event-stream")
            for chunk in sse.iter_text():
                buffer += chunk
                kinds = [e.event for e in parse_sse(buffer)]
                if "done" in kinds:
                    break
        events = parse_sse(buffer)
        for side in "ab":
            assert kinds.count(side) > 1, kinds  # the answer came word by word
            assert kinds.index(side) < kinds.index(f"{side}-set", 2)  # deltas before the final set
        finals = {e.event[0]: parse_html(e.data) for e in events if e.event in ("a-set", "b-set")}
        for node in finals.values():
            assert node.one("div", cls="md").text().strip()
        done = parse_html(events[-1].data)
        buttons = done.all("button", cls="vote-button")
        assert len(buttons) == 4 and not any("disabled" in b.attrs for b in buttons)

        vote = buttons[0]
        r = http.post(vote.attrs["hx-post"], data=json.loads(vote.attrs["hx-vals"]), headers=htmx)
        assert r.status_code == 200
        after = parse_html(r.text)
        revealed = {n.attrs["data-side"]: n.text() for n in after.all("span", cls="model-name")}
        assert set(revealed.values()) == set(NAMES.values())
        assert after.all("textarea") == []
        state = http.get(f"/api/v1/battles/{stream.attrs['sse-connect'].split('/')[2]}").json()
        assert {side: NAMES[m] for side, m in state["models"].items()} == revealed

        # Without the token the same form post is refused.
        assert (
            http.post("/battle", data={"prompt": "x", "mode": "anony"}, headers={"HX-Request": "true"}).status_code
            == 403
        )


def test_stop_through_the_pages(arena_server: ArenaServer) -> None:
    with httpx.Client(base_url=arena_server.base, timeout=180) as http:
        http.get("/")
        htmx = {"HX-Request": "true", "x-csrftoken": http.cookies["csrftoken"]}
        r = http.post(
            "/battle", data={"mode": "anony", "prompt": "Write a long story about a lighthouse."}, headers=htmx
        )
        arena: Node = parse_html(r.text)
        battle_id = arena.one("div", id_="battle").attrs["data-battle"]
        with http.stream("GET", f"/battle/{battle_id}/events") as sse:
            buffer = ""
            for chunk in sse.iter_text():
                buffer += chunk
                if sum(e.event in ("a", "b") for e in parse_sse(buffer)) >= 4:
                    break
        assert http.post(f"/battle/{battle_id}/stop", headers=htmx).status_code == 200
        events = parse_sse(http.get(f"/battle/{battle_id}/events").text)
        assert events[-1].event == "done"
        assert http.post(f"/battle/{battle_id}/vote", data={"winner": "tie"}, headers=htmx).status_code == 200
        state = http.get(f"/api/v1/battles/{battle_id}").json()  # finish_reason shows once voted (issue 19)
        assert {state["turns"][0][s]["finish_reason"] for s in "ab"} <= {"stopped", "stop", "length"}
        assert "stopped" in {state["turns"][0][s]["finish_reason"] for s in "ab"}
