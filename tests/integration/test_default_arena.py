"""The default arena on the real server: an anonymous battle between the two default chat models
in Chromium, both answers ending with `stop` (issue 22); and no replay of a battle prompt, through
/v1 (greedy, sampled, seeded) or regenerate, gives either side's text (issue 19 item 2).

The chat battle needs the demo adapter that `make demo-model` builds (where
``app.registry.spec.demo_model_dir`` says, ~/.cache/arena/demo-model by default): without it the
test is skipped with that reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

CHAT = {"gemma-3-270m-chat", "smollm2-135m-instruct"}


def built_demo_model() -> Path | None:
    """The demo adapter's folder when it is built (the tests' own ARENA_DEMO_MODEL="" aside)."""
    from app.registry import spec

    saved = os.environ.pop("ARENA_DEMO_MODEL", None)
    try:
        folder = spec.demo_model_dir()
        return folder if folder is not None and spec.demo_export() else None
    finally:
        if saved is not None:
            os.environ["ARENA_DEMO_MODEL"] = saved


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    folder = built_demo_model()
    if folder is None:
        pytest.skip("the demo chat model is not built: run `make demo-model` (about 4 minutes)")
    server = ArenaServer(tmp_path_factory.mktemp("defaults"), env={"ARENA_DEMO_MODEL": str(folder)})
    yield server
    server.stop()


@pytest.mark.browser
def test_an_anonymous_battle_between_the_two_chat_models_in_chromium(
    default_server: ArenaServer, page, artifacts: Path
) -> None:  # type: ignore[no-untyped-def]
    page.goto(default_server.base + "/")
    page.fill("textarea[name=prompt]", "What is the capital of France? Answer in one sentence.")
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector("#answer-a")
    page.wait_for_selector(".vote-button:not([disabled])", timeout=180_000)
    battle_id = page.get_attribute("#battle", "data-battle")
    page.click(".vote-button >> text=Tie")
    page.wait_for_selector(".reveal")
    page.screenshot(path=str(artifacts / "default-arena-battle.png"), full_page=True)
    state = httpx.get(f"{default_server.base}/api/v1/battles/{battle_id}", timeout=30).json()
    assert set(state["models"].values()) == CHAT
    (turn,) = state["turns"]
    for side in "ab":
        assert turn[side]["finish_reason"] == "stop", turn
        assert turn[side]["text"].strip(), turn
    assert page.errors == []


STORY = "Write a short story about a lighthouse keeper and a lost cat."
PROBE = 48  # tokens of each /v1 replay: a replay that starts as a side does would be the same answer


def _not_a_replay(replay: str, finish: str, sides: list[str]) -> None:
    for side in sides:
        assert replay != side
        if finish == "length":  # cut short: it must not be how the side's answer begins either
            assert not side.startswith(replay), (replay, side[: len(replay) + 20])


def test_no_replay_of_a_battle_prompt_gives_either_sides_text(arena_server: ArenaServer) -> None:
    """20 replays against one battle between the bundled Gemma's presets (greedy and 0.8 on /v1)."""
    with httpx.Client(base_url=arena_server.base, timeout=300) as http:
        r = http.post("/api/v1/battles", json={"prompt": STORY, "wait": True})
        assert r.status_code == 201, r.text
        battle_id = r.json()["id"]
        (turn,) = r.json()["turns"]
        sides = [turn["a"]["text"], turn["b"]["text"]]
        assert all(len(s) > 40 for s in sides) and sides[0] != sides[1]
        models = ["gemma-3-270m-greedy", "gemma-3-270m-t0.8"]
        client = openai.OpenAI(base_url=arena_server.base + "/v1", api_key="x", max_retries=0)
        replays = 0
        settings: list[dict[str, float | int]] = [{"temperature": 0}, {"temperature": 0}]  # greedy
        settings += [{}, {}, {}]  # the model's own defaults
        settings += [{"temperature": 0.7, "seed": s} for s in (0, 1, 42)]  # a client's seeds
        for model in models:
            for extra in settings:
                reply = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": STORY}], max_tokens=PROBE, **extra
                )
                choice = reply.choices[0]
                _not_a_replay(choice.message.content or "", choice.finish_reason, sides)
                replays += 1
        http.get("/")
        htmx = {"HX-Request": "true", "x-csrftoken": http.cookies["csrftoken"]}
        for _ in range(2):  # regenerate: both sides again, never as before
            assert http.post(f"/battle/{battle_id}/regenerate", headers=htmx).status_code == 200
            http.get(f"/battle/{battle_id}/events")  # returns once the turn is done
            again = http.get(f"/api/v1/battles/{battle_id}").json()["turns"][0]
            for side in "ab":
                _not_a_replay(again[side]["text"], "stop", sides)
                replays += 1
        assert replays == 20
