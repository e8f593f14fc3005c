"""Images on /v1 (in-process, over scripted engines): a vision model sees the cleaned image; each
kind of bad input is a 4xx naming the part at fault, nothing is stored, and the server goes on."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image as PILImage

from app.engines.scripted import ScriptedEngine
from app.server import create_app
from app.settings import Settings

CHAT = "/v1/chat/completions"
MODELS = """
[[models]]
id = "eye"
engine = "scripted"
vision = true
context_length = 4096
script = ["I see {images}"]

[[models]]
id = "blind"
engine = "scripted"
context_length = 4096
script = ["Text only."]
"""


def encode(picture: PILImage.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt)
    return out.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def ask(model: str, *urls: str, text: str = "What is in the picture?") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {"model": model, "messages": [{"role": "user", "content": parts}], "temperature": 0}


def build(tmp_path: Path, **overrides: Any) -> Litestar:
    models = tmp_path / "models.toml"
    models.write_text(MODELS)
    settings = Settings(
        models=models,
        db=tmp_path / "arena.db",
        generation_rate="100000/1",
        model_rate="100000/1",
        **overrides,
    )
    return create_app(settings)


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    async with AsyncTestClient(build(tmp_path, image_long_edge=64, image_max_mb=1)) as c:
        yield c


def engine(client: AsyncTestClient[Litestar], model: str) -> ScriptedEngine:
    found = client.app.state.models.get(model).engine
    assert isinstance(found, ScriptedEngine)
    return found


async def test_a_vision_model_gets_the_cleaned_image(client: AsyncTestClient[Litestar]) -> None:
    raw = encode(PILImage.effect_noise((300, 150), 30).convert("RGB"), "JPEG")
    r = await client.post(CHAT, json=ask("eye", data_url(raw, "image/jpeg")))
    assert r.status_code == 200, r.text
    (message,) = engine(client, "eye").requests[-1].messages or []
    (image,) = message.images
    assert message.content == "What is in the picture?"
    assert image.mime == "image/jpeg" and image.sha256 == hashlib.sha256(image.data).hexdigest()
    assert PILImage.open(io.BytesIO(image.data)).size == (64, 32)  # resized by the server's settings
    assert r.json()["choices"][0]["message"]["content"] == f"I see {image.sha256}"
    assert not client.app.state.images.folder.exists()  # /v1 keeps nothing


async def test_a_streamed_answer_about_an_image(client: AsyncTestClient[Litestar]) -> None:
    raw = encode(PILImage.new("RGB", (10, 10), "red"))
    r = await client.post(CHAT, json={**ask("eye", data_url(raw)), "stream": True})
    assert r.status_code == 200
    chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == f"I see {hashlib.sha256(encode(PILImage.new('RGB', (10, 10), 'red'))).hexdigest()}"


async def assert_refused(
    client: AsyncTestClient[Litestar], body: dict[str, Any], status: int, param: str | None, code: str | None = None
) -> dict[str, Any]:
    asked = {m: len(engine(client, m).requests) for m in ("eye", "blind")}
    r = await client.post(CHAT, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"]
    if code is not None:
        assert error["code"] == code
    assert {m: len(engine(client, m).requests) for m in asked} == asked  # no model was asked
    assert not client.app.state.images.folder.exists()  # nothing stored
    ok = await client.post(CHAT, json=ask("eye", data_url(encode(PILImage.new("RGB", (8, 8))))))  # still serving
    assert ok.status_code == 200, ok.text
    return error


URL0 = "messages[0].content[1].image_url.url"


async def test_not_an_image(client: AsyncTestClient[Litestar]) -> None:
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    error = await assert_refused(client, ask("eye", data_url(svg)), 400, URL0, "invalid_image")
    assert "not a PNG, JPEG or WebP" in error["message"]


async def test_truncated_image(client: AsyncTestClient[Litestar]) -> None:
    raw = encode(PILImage.effect_noise((100, 100), 30).convert("RGB"))
    error = await assert_refused(client, ask("eye", data_url(raw[: len(raw) // 2])), 400, URL0, "invalid_image")
    assert "truncated" in error["message"]


async def test_decompression_bomb(client: AsyncTestClient[Litestar]) -> None:
    raw = encode(PILImage.new("1", (20_000, 20_000)))  # 400 Mpx in ~50 KB
    await assert_refused(client, ask("eye", data_url(raw)), 400, URL0, "image_too_many_pixels")


async def test_oversized_image(client: AsyncTestClient[Litestar]) -> None:
    raw = b"\x89PNG\r\n\x1a\n" + bytes(1024 * 1024 + 10)  # the limit is 1 MB here
    error = await assert_refused(client, ask("eye", data_url(raw)), 400, URL0, "image_too_large")
    assert "1 MB" in error["message"]


async def test_too_many_images(client: AsyncTestClient[Litestar]) -> None:
    url = data_url(encode(PILImage.new("RGB", (8, 8))))
    body = ask("eye", url)
    body["messages"] += [
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": ask("eye", url)["messages"][0]["content"]},
    ]
    await assert_refused(client, body, 400, "messages[2].content[1].image_url.url", "too_many_images")


async def test_image_to_a_text_only_model(client: AsyncTestClient[Litestar]) -> None:
    body = ask("blind", data_url(b"not even decoded"))  # refused before any decoding
    error = await assert_refused(client, body, 400, "messages[0].content", "model_not_vision")
    assert "does not accept images" in error["message"]


async def test_remote_url_while_fetching_is_off(client: AsyncTestClient[Litestar]) -> None:
    for url in ("https://example.com/cat.png", "http://127.0.0.1:1/x.png", "http://169.254.169.254/latest"):
        error = await assert_refused(client, ask("eye", url), 400, URL0, "image_url_not_allowed")
        assert "not fetched" in error["message"]


async def test_other_url_schemes(client: AsyncTestClient[Litestar]) -> None:
    await assert_refused(client, ask("eye", "file:///etc/passwd"), 400, URL0)


async def test_mismatched_content_type(client: AsyncTestClient[Litestar]) -> None:
    raw = encode(PILImage.new("RGB", (8, 8)), "JPEG")
    error = await assert_refused(client, ask("eye", data_url(raw, "image/png")), 400, URL0, "image_type_mismatch")
    assert "sent as image/png but is image/jpeg" in error["message"]


async def test_malformed_image_part(client: AsyncTestClient[Litestar]) -> None:
    body = ask("eye")
    body["messages"][0]["content"].append({"type": "image_url", "image_url": {"link": "x"}})
    await assert_refused(client, body, 400, "messages[0].content")  # the union names the whole content


async def test_remote_urls_only_from_allowed_domains(tmp_path: Path) -> None:
    async with AsyncTestClient(build(tmp_path, image_url_domains=["images.example.org"])) as c:
        for url in (
            "http://images.example.org/a.png",
            "https://evil.example.org/a.png",
            "https://user@images.example.org/a.png",
        ):
            r = await c.post(CHAT, json=ask("eye", url))
            assert r.status_code == 400 and r.json()["error"]["code"] == "image_url_not_allowed", url


async def test_images_off(tmp_path: Path) -> None:
    async with AsyncTestClient(build(tmp_path, images_per_conversation=0)) as c:
        r = await c.post(CHAT, json=ask("eye", data_url(encode(PILImage.new("RGB", (8, 8))))))
        assert r.status_code == 400 and "takes no images" in r.json()["error"]["message"]


async def test_a_15_mb_image_fits_the_default_body_limit(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "a.db")
    assert settings.max_body_bytes >= (settings.image_max_mb * 1024 * 1024) * 4 / 3 + 10_000
