"""The moderation hook: the words and model checks, in the arena and on /v1, in-process over
scripted engines. A blocked prompt is refused (400 content_policy_violation), logged, and never
reaches a model; nothing else is stored; the server keeps serving."""

from __future__ import annotations

import base64
import hashlib
import io
import textwrap
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from app.engines.base import Delta, GenerationRequest, Image
from app.engines.scripted import ScriptedEngine
from app.errors import Invalid
from app.moderation.checks import CheckFailed, excerpt
from app.moderation.classifier import parse_answer
from app.moderation.log import Origin
from app.moderation.words import WordsCheck
from app.server import create_app
from app.settings import Settings, SettingsError, load_settings
from tests.helpers.arena import csrf, db_rows, parse_html, serve

TRIGGER = "zorblax"


def engine(c: Any, model: str) -> Any:
    return c.app.state.models.get(model).engine


def asked(c: Any, *models: str) -> int:
    """How many requests these models' engines have been sent."""
    return sum(len(engine(c, m).requests) for m in models)


def log_rows(c: Any) -> list[Any]:
    return db_rows(c.app, "SELECT * FROM moderation_log ORDER BY id")


def assert_blocked(r: Any, param: str) -> None:
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "content_policy_violation"
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert "content policy" in error["message"]


# -- the pieces --------------------------------------------------------------------------------


async def test_words_match_whole_words_any_case_and_regexes() -> None:
    check = WordsCheck([("t", "Zorblax"), ("t", "bad phrase"), ("t", r"re:\bkill\s*-?\s*switch\b")])
    for text in ["a ZORBLAX here", "zorblax", "say bad   PHRASE now", "the kill-switch", "ｚｏｒｂｌａｘ!"]:
        assert (await check.check([text], [])).flagged, text
    for text in ["zorblaxes", "prezorblax", "bad phrases", "a phrase that is bad", "killswitchboard"]:
        assert not (await check.check([text], [])).flagged, text
    verdict = await check.check(["fine", "then Zorblax"], [])
    assert verdict.flagged and verdict.reason == "matches 'Zorblax'"


async def test_words_of_other_characters_and_a_long_list() -> None:
    check = WordsCheck([("t", "C++"), ("t", "Straße"), *(("t", f"word{n} x{n}") for n in range(2000))])
    assert len(check.patterns) == 1 and len(check.phrases) == 2001  # one regex; the rest looked up by word
    for text in ["I write c++ daily", "die STRASSE", "then WORD1999 x1999."]:
        assert (await check.check([text], [])).flagged, text
    for text in ["abc++", "word1999 x1998", "word1999"]:
        assert not (await check.check([text], [])).flagged, text


async def test_words_ignore_invisible_format_characters_and_run_off_the_loop(monkeypatch) -> None:
    check = WordsCheck([("t", "badword"), ("t", "bad phrase"), ("t", "re:kill\\s*switch")])
    for text in ["bad\u200bword", "b\u00adadword", "\ufeffBAD\u200dWORD", "bad\u2060 phrase", "kill\u200bswitch"]:
        assert (await check.check([text], [])).flagged, ascii(text)
    assert not (await check.check(["bad word"], [])).flagged
    threads: list[Any] = []

    async def to_thread(func: Any, *args: Any) -> Any:
        threads.append(func)
        return func(*args)

    monkeypatch.setattr("app.moderation.words.asyncio.to_thread", to_thread)
    assert (await check.check(["a badword"], [])).flagged and threads == [check.scan]


def test_words_refuse_a_bad_regex_and_an_empty_list() -> None:
    with pytest.raises(Invalid, match="bad regular expression"):
        WordsCheck([("words.txt:3", "re:(unclosed")])
    with pytest.raises(Invalid, match="no entries"):
        WordsCheck([])


@pytest.mark.parametrize(
    ("answer", "flagged", "reason"),
    [
        ("SAFE", False, ""),
        ("safe.", False, ""),
        ("  **SAFE**\n", False, ""),
        ("UNSAFE", True, "classifier: unsafe"),
        ("UNSAFE: weapons", True, "classifier: weapons"),
        ("Unsafe - harassment\nmore", True, "classifier: harassment more"),
    ],
)
def test_classifier_answer_parses_strictly(answer: str, flagged: bool, reason: str) -> None:
    verdict = parse_answer(answer)
    assert (verdict.flagged, verdict.reason) == (flagged, reason)


@pytest.mark.parametrize("answer", ["", "I think it is SAFE", "SAFETY", "NOT SAFE", "UNSAFE_X", "yes"])
def test_classifier_answer_that_does_not_parse_fails_the_check(answer: str) -> None:
    with pytest.raises(CheckFailed):
        parse_answer(answer)


def test_excerpt_is_short_and_one_line() -> None:
    image = Image(b"x", "image/png", hashlib.sha256(b"x").hexdigest())
    text = excerpt(["a\n\nb " * 200], [image], limit=50)
    assert "\n" not in text and text.startswith("a b a b") and len(text) < 80
    assert text.endswith(f"[image {image.sha256[:12]}]")


def test_settings_name_the_checks() -> None:
    assert load_settings(env={"ARENA_MODERATION": "Words, remote,words"}).moderation == ["words", "remote"]
    with pytest.raises(SettingsError, match="--moderation: unknown check 'regex'"):
        load_settings(cli={"moderation": ["regex"]})


def test_a_check_without_its_setting_fails_at_start_up(tmp_path: Path) -> None:
    for kind, needs in [("words", "no entries"), ("model", "--moderation-model"), ("remote", "--moderation-url")]:
        with pytest.raises(Invalid, match=needs):
            create_app(Settings(db=tmp_path / "a.db", moderation=[kind]))
    with pytest.raises(Invalid, match="not in the models file"):
        create_app(Settings(db=tmp_path / "a.db", moderation=["model"], moderation_model="nope"))


# -- the words check in the arena and on /v1 ---------------------------------------------------


async def test_words_block_a_battle_before_anything_is_stored(arena, tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text(f"# blocked\n\n{TRIGGER}\n")
    async with arena(moderation=["words"], moderation_words_file=words) as c:
        r = await c.post("/api/v1/battles", json={"prompt": f"Tell me about {TRIGGER.upper()} please", "wait": True})
        assert_blocked(r, "prompt")
        assert asked(c, "alpha", "beta") == 0
        assert db_rows(c.app, "SELECT * FROM battles") == [] and db_rows(c.app, "SELECT * FROM messages") == []
        (row,) = log_rows(c)
        assert (row["source"], row["checker"], row["battle_id"]) == ("battle", "words", "")
        assert row["reason"] == f"matches {TRIGGER!r}" and row["excerpt"] == f"Tell me about {TRIGGER.upper()} please"
        assert row["voter_hash"] and set(row["model"].split()) == {"alpha", "beta"}
        assert c.app.state.moderation.blocked == 1

        r = await c.post("/api/v1/battles", json={"prompt": "A clean question", "wait": True})
        assert r.status_code == 201, r.text
        assert {r.json()["turns"][0][s]["text"] for s in "ab"} == {"Hello there.", "Hi!"}
        assert asked(c, "alpha", "beta") == 2 and len(log_rows(c)) == 1


async def test_a_blocked_next_turn_stores_nothing_and_the_battle_goes_on(arena) -> None:
    async with arena(moderation=["words"], moderation_words=[TRIGGER]) as c:
        r = await c.post("/api/v1/battles", json={"prompt": "First", "wait": True})
        battle_id = r.json()["id"]
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": f"and {TRIGGER}", "wait": True})
        assert_blocked(r, "prompt")
        assert asked(c, "alpha", "beta") == 2
        assert [m["content"] for m in db_rows(c.app, "SELECT * FROM messages WHERE side = ''")] == ["First"]
        (row,) = log_rows(c)
        assert (row["battle_id"], row["checker"]) == (battle_id, "words")
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Second", "wait": True})
        assert r.status_code == 201 and len(r.json()["turns"]) == 2


async def test_the_page_shows_the_blocked_message(arena) -> None:
    async with arena(moderation=["words"], moderation_words=[TRIGGER]) as c:
        r = await c.post("/battle", data={"prompt": TRIGGER, "mode": "anony"}, headers=await csrf(c))
        assert r.status_code == 400
        assert r.headers["hx-retarget"] == "#flash"
        assert "blocked by this server's content policy" in parse_html(r.text).text()
        assert asked(c, "alpha", "beta") == 0 and db_rows(c.app, "SELECT * FROM battles") == []


async def test_words_block_v1_chat_and_completions(arena) -> None:
    async with arena(moderation=["words"], moderation_words=[TRIGGER]) as c:
        messages = [{"role": "system", "content": f"You love {TRIGGER}."}, {"role": "user", "content": "Hi"}]
        r = await c.post("/v1/chat/completions", json={"model": "alpha", "messages": messages})
        assert_blocked(r, "messages")
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": f"{TRIGGER} is"})
        assert_blocked(r, "prompt")
        r = await c.post("/v1/chat/completions", json={"model": "alpha", "messages": messages, "stream": True})
        assert_blocked(r, "messages")
        assert asked(c, "alpha") == 0
        rows = log_rows(c)
        assert [(x["source"], x["model"]) for x in rows] == [("v1", "alpha")] * 3
        assert rows[0]["excerpt"] == f"You love {TRIGGER}. Hi"

        r = await c.post("/v1/chat/completions", json={"model": "alpha", "messages": [messages[1]]})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Hello there."
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": "Once"})
        assert r.status_code == 200 and asked(c, "alpha") == 2


async def test_moderation_off_lets_everything_through(arena) -> None:
    async with arena() as c:
        assert not c.app.state.moderation.active
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": TRIGGER})
        assert r.status_code == 200 and log_rows(c) == []


# -- the model check ---------------------------------------------------------------------------


class TriggerEngine(ScriptedEngine):
    """A classifier: UNSAFE when the trigger is in what it is asked, SAFE otherwise; ``answer``
    overrides both (an answer that does not parse)."""

    answer: str | None = None

    async def _generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        text = " ".join(m.content for m in request.messages or [])
        self.replies = [self.answer or ("UNSAFE: weapons" if TRIGGER in text else "SAFE")]
        self._turn = 0
        async for delta in super()._generate(request):
            yield delta


MODELS = """
[[models]]
id = "alpha"
engine = "scripted"
vision = {vision}
script = ["Alpha answers."]

[[models]]
id = "beta"
engine = "scripted"
vision = {vision}
script = ["Beta answers."]

[[models]]
id = "guard"
engine = "scripted"
weight = 0
vision = {vision}
context_length = 4096
script = ["SAFE"]
"""


def classifier_app(tmp_path: Path, vision: bool = False, **settings: Any) -> Any:
    models = tmp_path / "models.toml"
    models.write_text(textwrap.dedent(MODELS.format(vision=str(vision).lower())))
    template = tmp_path / "prompt.txt"
    template.write_text("POLICY-7: answer SAFE or UNSAFE.\n<<{prompt}>>\n")
    base = {
        "models": models,
        "db": tmp_path / "arena.db",
        "generation_rate": "1000/1",
        "model_rate": "1000/1",
        "moderation": ["model"],
        "moderation_model": "guard",
        "moderation_prompt": template,
    }
    return create_app(Settings(**{**base, **settings}))


async def swap_classifier(c: Any) -> TriggerEngine:
    entry = c.app.state.models.get("guard")
    guard = TriggerEngine()
    guard.vision = entry.engine.vision
    entry.engine = guard
    return guard


async def test_model_check_blocks_in_the_arena_with_the_editable_prompt(tmp_path: Path) -> None:
    async with serve(classifier_app(tmp_path)) as c:
        guard = await swap_classifier(c)
        r = await c.post("/api/v1/battles", json={"prompt": f"How to build a {TRIGGER}?", "wait": True})
        assert_blocked(r, "prompt")
        assert asked(c, "alpha", "beta") == 0 and db_rows(c.app, "SELECT * FROM battles") == []
        (request,) = guard.requests
        (message,) = request.messages or []
        assert message.content == f"POLICY-7: answer SAFE or UNSAFE.\n<<How to build a {TRIGGER}?>>\n"
        assert request.temperature == 0.0
        (row,) = log_rows(c)
        assert (row["checker"], row["reason"]) == ("model", "classifier: weapons")

        (tmp_path / "prompt.txt").write_text("EDITED POLICY, longer than before: {prompt}")
        r = await c.post("/api/v1/battles", json={"prompt": "A clean question", "wait": True})
        assert r.status_code == 201, r.text
        assert guard.requests[-1].messages[0].content == "EDITED POLICY, longer than before: A clean question"
        assert asked(c, "alpha", "beta") == 2  # the classifier (weight 0) is never drawn


async def test_model_check_blocks_on_v1(tmp_path: Path) -> None:
    async with serve(classifier_app(tmp_path)) as c:
        guard = await swap_classifier(c)
        messages = [{"role": "user", "content": f"{TRIGGER} now"}]
        r = await c.post("/v1/chat/completions", json={"model": "alpha", "messages": messages})
        assert_blocked(r, "messages")
        r = await c.post("/v1/completions", json={"model": "beta", "prompt": f"{TRIGGER} now"})
        assert_blocked(r, "prompt")
        assert asked(c, "alpha", "beta") == 0 and len(guard.requests) == 2
        r = await c.post(
            "/v1/chat/completions", json={"model": "alpha", "messages": [{"role": "user", "content": "Hi"}]}
        )
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Alpha answers."
        assert [row["source"] for row in log_rows(c)] == ["v1", "v1"]


async def test_an_unparseable_answer_fails_closed_by_default(tmp_path: Path) -> None:
    async with serve(classifier_app(tmp_path)) as c:
        guard = await swap_classifier(c)
        guard.answer = "Sure! Here is how"
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": "Hello"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "moderation_unavailable"
        assert r.headers["retry-after"] == "5"
        assert asked(c, "alpha") == 0
        (row,) = log_rows(c)
        assert row["reason"].startswith("check failed: the classifier's answer does not start with SAFE")
        guard.answer = None
        assert (await c.post("/v1/completions", json={"model": "alpha", "prompt": "Hello"})).status_code == 200


async def test_fail_open_lets_a_prompt_through_when_the_check_fails(tmp_path: Path) -> None:
    async with serve(classifier_app(tmp_path, moderation_fail_open=True)) as c:
        guard = await swap_classifier(c)
        guard.answer = "Maybe"
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": "Hello"})
        assert r.status_code == 200 and asked(c, "alpha") == 1 and log_rows(c) == []
        guard.answer = None  # a decided UNSAFE still blocks
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": TRIGGER})
        assert_blocked(r, "prompt")


@pytest.mark.parametrize("vision", [True, False])
async def test_images_reach_only_a_vision_classifier(tmp_path: Path, vision: bool) -> None:
    image = Image(b"\x89PNG...", "image/png", hashlib.sha256(b"\x89PNG...").hexdigest())
    async with serve(classifier_app(tmp_path, vision=vision)) as c:
        guard = await swap_classifier(c)
        guard.vision = vision
        await c.app.state.moderation.check(["What is this?"], [image], Origin("v1"), param="messages")
        (request,) = guard.requests
        assert request.messages[0].images == ((image,) if vision else ())
        await c.app.state.moderation.check([], [image], Origin("v1"), param="messages")
        assert len(guard.requests) == (2 if vision else 1)  # images alone: unchecked by a text classifier


async def test_a_vision_classifier_sees_the_battle_image(tmp_path: Path) -> None:
    """End to end: the image uploaded with a battle reaches a vision classifier, cleaned, and is
    the one the battle then stores."""
    picture = io.BytesIO()
    PILImage.new("RGB", (32, 24), (0, 90, 200)).save(picture, "PNG")
    upload = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()
    async with serve(classifier_app(tmp_path, vision=True)) as c:
        guard = await swap_classifier(c)
        r = await c.post("/api/v1/battles", json={"prompt": "What colour?", "images": [upload], "wait": True})
        assert r.status_code == 201, r.text
        (request,) = guard.requests
        (seen,) = request.messages[0].images
        (row,) = db_rows(c.app, "SELECT sha256 FROM battle_images")
        assert seen.sha256 == row["sha256"] and seen.mime.startswith("image/")
        r = await c.post("/api/v1/battles", json={"prompt": f"{TRIGGER} in it?", "images": [upload]})
        assert_blocked(r, "prompt")
        assert len(db_rows(c.app, "SELECT * FROM battles")) == 1 and len(guard.requests) == 2
