"""The remote engine carries an image from one real Arena server to a second one on loopback, and
the image arrives intact: the second server's scripted vision model echoes the hash of the image
it was shown, and that is the hash the first server made of the upload."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image as PILImage

from app.media.images import ImageLimits, ImageStore
from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

BACK = """
[[models]]
id = "eye"
engine = "scripted"
vision = true
context_length = 100000
script = ["{images}"]
"""

FRONT = """
[[models]]
id = "far-eye"
engine = "remote"
vision = true
base_url = "{base}/v1"
remote_model = "eye"
context_length = 100000

[[models]]
id = "far-text"
engine = "remote"
base_url = "{base}/v1"
remote_model = "eye"
context_length = 100000
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaServer, ArenaServer]]:
    back_dir, front_dir = tmp_path_factory.mktemp("back"), tmp_path_factory.mktemp("front")
    (back_dir / "models.toml").write_text(BACK)
    back = ArenaServer(back_dir, "--models", str(back_dir / "models.toml"))
    try:
        (front_dir / "models.toml").write_text(FRONT.replace("{base}", back.base))
        front = ArenaServer(front_dir, "--models", str(front_dir / "models.toml"))
        try:
            yield front, back
        finally:
            front.stop()
    finally:
        back.stop()


def upload(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    PILImage.effect_noise(size, 60).convert("RGB").save(out, "PNG")
    return out.getvalue()


def ask(client: openai.OpenAI, model: str, png: bytes) -> str:
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}],
            }
        ],
    )
    return reply.choices[0].message.content or ""


@pytest.mark.parametrize("size", [(200, 120), (1600, 900)])  # as is, and resized by the first server
def test_the_image_arrives_intact(servers: tuple[ArenaServer, ArenaServer], size: tuple[int, int]) -> None:
    front, _back = servers
    png = upload(size)
    cleaned, _w, _h = ImageStore(Path("unused"), ImageLimits()).sanitize(png, "image/png")  # the default settings
    client = openai.OpenAI(base_url=front.base + "/v1", api_key="unused", max_retries=0)
    assert ask(client, "far-eye", png) == cleaned.sha256


def test_a_remote_model_without_vision_is_refused(servers: tuple[ArenaServer, ArenaServer]) -> None:
    front, _back = servers
    client = openai.OpenAI(base_url=front.base + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "far-text", upload((20, 20)))
    assert caught.value.code == "model_not_vision"
