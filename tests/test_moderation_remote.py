"""The remote check against a fake OpenAI-style moderation endpoint on loopback (a second, tiny
Litestar app served by uvicorn in the test's event loop): blocks in the arena and on /v1, sends
images as image_url parts and the key from the environment, and fails closed (or open) when the
endpoint breaks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from litestar import Litestar, Request, Response, post
from PIL import Image as PILImage

from app.engines.base import Image
from app.errors import Invalid
from app.moderation.log import Origin
from app.moderation.remote import read_results
from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import db_rows, serve
from tests.helpers.server import free_port, scripted_models_toml

TRIGGER = "zorblax"
KEY_ENV = "ARENA_REMOTE_MODERATION_KEY"


@dataclass
class FakeModeration:
    """What the endpoint was sent, and how it answers: flagged when the trigger is in a text
    part (or, with ``flag_images``, when there is an image); ``fail`` makes it answer 500,
    ``garbage`` answer JSON of another shape."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    fail: bool = False
    garbage: bool = False
    flag_images: bool = False

    def app(self) -> Litestar:
        @post("/v1/moderations", status_code=200)
        async def moderations(request: Request[Any, Any, Any]) -> Response[Any]:
            body = await request.json()
            self.seen.append(body)
            self.auth.append(request.headers.get("authorization", ""))
            if self.fail:
                return Response({"error": {"message": "boom"}}, status_code=500)
            if self.garbage:
                return Response({"id": "x"})
            texts = [p["text"] for p in body["input"] if p["type"] == "text"]
            images = [p for p in body["input"] if p["type"] == "image_url"]
            flagged = any(TRIGGER in t for t in texts)
            nsfw = self.flag_images and bool(images)
            categories = {"violence": flagged, "hate": False, "sexual": nsfw}
            flagged |= nsfw
            return Response(
                {"id": "modr-1", "model": body["model"], "results": [{"flagged": flagged, "categories": categories}]}
            )

        return Litestar([moderations])


@asynccontextmanager
async def fake_endpoint() -> AsyncIterator[tuple[FakeModeration, str]]:
    fake = FakeModeration()
    port = free_port()
    config = uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "the fake moderation endpoint did not start"
    try:
        yield fake, f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, "sk-moderation-test")
    return "sk-moderation-test"


def remote(url: str, **more: Any) -> dict[str, Any]:
    return {
        "moderation": ["remote"],
        "moderation_url": url,
        "moderation_key_env": KEY_ENV,
        "moderation_remote_model": "omni-test",
        **more,
    }


def asked(c: Any, *models: str) -> int:
    return sum(len(c.app.state.models.get(m).engine.requests) for m in models)


async def test_remote_check_blocks_a_battle_and_lets_a_clean_one_through(arena, key: str) -> None:
    async with fake_endpoint() as (fake, url), arena(**remote(url)) as c:
        r = await c.post("/api/v1/battles", json={"prompt": f"all about {TRIGGER}", "wait": True})
        assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation"
        assert asked(c, "alpha", "beta") == 0 and db_rows(c.app, "SELECT * FROM battles") == []
        assert fake.seen == [{"model": "omni-test", "input": [{"type": "text", "text": f"all about {TRIGGER}"}]}]
        assert fake.auth == [f"Bearer {key}"]
        (row,) = db_rows(c.app, "SELECT * FROM moderation_log")
        assert (row["source"], row["checker"], row["reason"]) == ("battle", "remote", "remote: violence")

        r = await c.post("/api/v1/battles", json={"prompt": "A clean question", "wait": True})
        assert r.status_code == 201 and asked(c, "alpha", "beta") == 2 and len(fake.seen) == 2


async def test_remote_check_blocks_v1_and_sends_images_as_parts(arena, key: str) -> None:
    async with fake_endpoint() as (fake, url), arena(**remote(url)) as c:
        messages = [{"role": "user", "content": f"{TRIGGER}?"}]
        r = await c.post("/v1/chat/completions", json={"model": "alpha", "messages": messages})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": TRIGGER})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
        assert asked(c, "alpha") == 0
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": "Once"})
        assert r.status_code == 200 and asked(c, "alpha") == 1

        image = Image(b"png-bytes", "image/png", hashlib.sha256(b"png-bytes").hexdigest())
        await c.app.state.moderation.check(["Look"], [image], Origin("v1"), param="messages")
        assert fake.seen[-1]["input"] == [
            {"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": image.data_url()}},
        ]


async def test_an_endpoint_error_fails_closed_and_the_server_keeps_serving(arena, key: str) -> None:
    async with fake_endpoint() as (fake, url), arena(**remote(url)) as c:
        for broken in ("fail", "garbage"):
            setattr(fake, broken, True)
            r = await c.post("/api/v1/battles", json={"prompt": "Hello", "wait": True})
            assert r.status_code == 503 and r.json()["error"]["code"] == "moderation_unavailable", r.text
            setattr(fake, broken, False)
        assert asked(c, "alpha", "beta") == 0 and db_rows(c.app, "SELECT * FROM battles") == []
        reasons = [row["reason"] for row in db_rows(c.app, "SELECT * FROM moderation_log")]
        assert [r.split(":")[0] for r in reasons] == ["check failed", "check failed"]
        assert (await c.post("/api/v1/battles", json={"prompt": "Hello", "wait": True})).status_code == 201


async def test_an_unreachable_endpoint_fails_open_when_asked(arena, key: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    async with arena(**remote(url, moderation_timeout=2)) as c:
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": "Hello"})
        assert r.status_code == 503 and asked(c, "alpha") == 0
    async with arena(**remote(url, moderation_timeout=2, moderation_fail_open=True)) as c:
        r = await c.post("/v1/completions", json={"model": "alpha", "prompt": "Hello"})
        assert r.status_code == 200 and asked(c, "alpha") == 1


def test_the_key_comes_only_from_a_remote_prefixed_variable(make_app, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_SECRET", "x")
    with pytest.raises(Invalid, match="must name an environment variable starting with ARENA_REMOTE_"):
        make_app(**remote("http://127.0.0.1:9/v1", moderation_key_env="HOME_SECRET"))
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(Invalid, match=f"{KEY_ENV} is not set"):
        make_app(**remote("http://127.0.0.1:9/v1"))


def test_results_are_read_strictly() -> None:
    flagged = read_results({"results": [{"flagged": True, "categories": {"hate": True, "sexual": False}}]})
    assert (flagged.flagged, flagged.reason) == (True, "remote: hate")
    assert not read_results({"results": [{"flagged": False}]}).flagged
    for bad in [{}, {"results": []}, {"results": [{"flagged": "yes"}]}, [], {"results": "x"}]:
        with pytest.raises(Exception, match="result"):
            read_results(bad)


def png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (40, 30), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def data_url(raw: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def stored(app: Any) -> dict[str, int]:
    tables = ("battles", "messages", "images", "battle_images")
    counts = {t: db_rows(app, f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}  # noqa: S608
    folder = Path(app.state.images.folder)
    counts["files"] = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
    return counts


async def test_an_uploaded_image_is_checked_before_anything_is_stored(tmp_path: Path, key: str) -> None:
    """The image of a battle and of a /v1 request reaches the endpoint (cleaned, as an image_url
    part); a flagged image stores nothing and reaches no model."""
    models = tmp_path / "vision.toml"
    models.write_text(scripted_models_toml({"eye-1": ["One."], "eye-2": ["Two."]}, vision=["eye-1", "eye-2"]))
    async with fake_endpoint() as (fake, url):
        fake.flag_images = True
        settings = Settings(models=models, db=tmp_path / "arena.db", generation_rate="1000/1", **remote(url))
        async with serve(create_app(settings)) as c:
            r = await c.post("/api/v1/battles", json={"prompt": "What is it?", "images": [data_url(png())]})
            assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation", r.text
            assert set(stored(c.app).values()) == {0} and asked(c, "eye-1", "eye-2") == 0
            (seen,) = fake.seen
            image_parts = [p for p in seen["input"] if p["type"] == "image_url"]
            assert len(image_parts) == 1 and image_parts[0]["image_url"]["url"].startswith("data:image/")
            (row,) = db_rows(c.app, "SELECT * FROM moderation_log")
            assert "[image " in row["excerpt"] and row["reason"] == "remote: sexual"

            chat = {"model": "eye-1", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "And this?"}, {"type": "image_url", "image_url": {"url": data_url(png())}}
            ]}]}  # fmt: skip
            r = await c.post("/v1/chat/completions", json=chat)
            assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
            assert asked(c, "eye-1") == 0

            fake.flag_images = False
            r = await c.post(
                "/api/v1/battles", json={"prompt": "What is it?", "images": [data_url(png())], "wait": True}
            )
            assert r.status_code == 201, r.text
            assert stored(c.app)["battle_images"] == 1 and asked(c, "eye-1", "eye-2") == 2
            assert (await c.post("/v1/chat/completions", json=chat)).status_code == 200
