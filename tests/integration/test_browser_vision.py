"""Headless Chromium on the real server, battles about an image: pick a file, see the thumbnail,
remove it, add it again by drag-and-drop and by paste, battle, vote and see the names; only the
vision models are ever drawn; an SVG or HTML file renamed ``.png`` is refused with a message."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage

from tests.helpers.browser import wait_until
from tests.helpers.server import ArenaServer, scripted_models_toml

pytestmark = [pytest.mark.integration, pytest.mark.browser]

VISION = {"eye-1": "Scripted eye-1", "eye-2": "Scripted eye-2"}
TEXT_ONLY = "words-only"


def png_bytes(color: tuple[int, int, int] = (20, 120, 220)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (80, 60), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def vision_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("vision")
    models = tmp / "models.toml"
    replies = {m: [f"{m} saw: {{images}}."] for m in VISION}
    replies[TEXT_ONLY] = ["I only read words."]
    models.write_text(scripted_models_toml(replies, vision=VISION))
    server = ArenaServer(tmp, "--models", str(models))
    yield server
    server.stop()


def preview_shown(page) -> bool:  # type: ignore[no-untyped-def]
    """The thumbnail is visible and decoded (a real image, not a broken one)."""
    return bool(
        page.evaluate(
            """() => {
              const box = document.querySelector('.image-preview');
              const img = box && box.querySelector('img.image-thumb');
              return !!box && !box.hidden && !!img && img.complete && img.naturalWidth > 0;
            }"""
        )
    )


def chosen_files(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.evaluate("document.querySelector('.image-picker input[type=file]').files.length"))


def dispatch_with_file(page, kind: str, raw: bytes, name: str, mime: str) -> None:  # type: ignore[no-untyped-def]
    """A drop on the picker, or a paste into the prompt, carrying one file in a DataTransfer."""
    page.evaluate(
        """([kind, b64, name, mime]) => {
          const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, {type: mime}));
          if (kind === 'drop') {
            const zone = document.querySelector('.image-drop');
            zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
          } else {
            const prompt = document.querySelector('textarea[name=prompt]');
            prompt.focus();
            prompt.dispatchEvent(new ClipboardEvent('paste', {clipboardData: transfer, bubbles: true, cancelable: true}));
          }
        }""",
        [kind, base64.b64encode(raw).decode(), name, mime],
    )


def test_upload_preview_remove_battle_vote(vision_server: ArenaServer, page, tmp_path: Path, artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    picture = tmp_path / "photo.png"
    picture.write_bytes(png_bytes())
    page.goto(vision_server.base + "/")
    assert not preview_shown(page)
    page.set_input_files(".image-picker input[type=file]", str(picture))  # the file picker
    wait_until(page, "!document.querySelector('.image-preview').hidden")
    wait_until(page, "document.querySelector('img.image-thumb').naturalWidth > 0")
    assert preview_shown(page) and chosen_files(page) == 1
    assert page.locator(".image-name").inner_text() == "photo.png"

    page.click(".image-remove")
    assert page.locator(".image-preview").is_hidden() and chosen_files(page) == 0

    dispatch_with_file(page, "drop", png_bytes((200, 10, 10)), "dropped.png", "image/png")
    wait_until(page, "document.querySelector('img.image-thumb').naturalWidth > 0")
    assert preview_shown(page) and chosen_files(page) == 1
    assert page.locator(".image-name").inner_text() == "dropped.png"
    page.click(".image-remove")
    assert chosen_files(page) == 0

    pasted = png_bytes((10, 200, 10))
    dispatch_with_file(page, "paste", pasted, "image.png", "image/png")
    wait_until(page, "document.querySelector('img.image-thumb').naturalWidth > 0")
    assert preview_shown(page) and page.locator(".image-name").inner_text() == "image.png"
    page.screenshot(path=str(artifacts / "vision-picker.png"), full_page=True)

    page.fill("textarea[name=prompt]", "What colour is this picture?")
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector("#answer-a")
    wait_until(
        page,
        "(() => { const i = document.querySelector('.prompt-images img'); return i && i.complete && i.naturalWidth > 0; })()",
    )
    src = page.get_attribute(".prompt-images img", "src") or ""
    sha = src.rsplit("/", 1)[-1]
    battle_id = page.get_attribute("#battle", "data-battle")
    assert src == f"/battle/{battle_id}/images/{sha}"
    page.wait_for_selector(".vote-button:not([disabled])", timeout=60_000)
    answers = page.locator(".answer .md").all_inner_texts()
    assert len(answers) == 2 and all(sha in a for a in answers)  # both models were shown this image
    stranger = httpx.get(vision_server.base + src)  # the same address, but no admin: still the visitor
    assert stranger.status_code == 200 and hashlib.sha256(stranger.content).hexdigest() == sha
    page.screenshot(path=str(artifacts / "vision-battle-before-vote.png"), full_page=True)

    page.click(".vote-button >> text=A is better")
    page.wait_for_selector(".reveal")
    revealed = page.locator(".reveal .model-name").all_inner_texts()
    assert sorted(revealed) == sorted(VISION.values())
    assert page.locator(".prompt-images img").count() == 1  # the image stays in the conversation
    page.screenshot(path=str(artifacts / "vision-battle.png"), full_page=True)
    assert page.errors == []


def test_a_text_only_model_is_never_drawn_for_an_image(vision_server: ArenaServer, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    picture = tmp_path / "p.png"
    drawn: set[str] = set()
    for n in range(4):
        picture.write_bytes(png_bytes((n * 40, 90, 30)))
        page.goto(vision_server.base + "/")
        page.set_input_files(".image-picker input[type=file]", str(picture))
        page.fill("textarea[name=prompt]", f"Describe picture {n}.")
        page.click("form.prompt-form button[type=submit]")
        page.wait_for_selector(".vote-button:not([disabled])", timeout=60_000)
        page.click(".vote-button >> text=Tie")
        page.wait_for_selector(".reveal")
        drawn |= set(page.locator(".reveal .model-name").all_inner_texts())
    image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    for n in range(8):  # and more battles through the JSON API
        r = httpx.post(
            f"{vision_server.base}/api/v1/battles", json={"prompt": f"Q{n}", "images": [image], "wait": True}
        )
        assert r.status_code == 201, r.text
        battle_id = r.json()["id"]
        r = httpx.post(f"{vision_server.base}/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})
        drawn |= {VISION.get(m, m) for m in r.json().values()}
    assert drawn == set(VISION.values())
    texts = set()
    for n in range(12):  # without an image the text-only model takes part
        r = httpx.post(f"{vision_server.base}/api/v1/battles", json={"prompt": f"Plain {n}", "wait": True})
        r = httpx.post(f"{vision_server.base}/api/v1/battles/{r.json()['id']}/vote", json={"winner": "tie"})
        texts |= set(r.json().values())
    assert TEXT_ONLY in texts
    assert page.errors == []


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>window.__svg=1</script></svg>'
HTML = b"<!doctype html><html><body><script>window.__html=1</script>hello</body></html>"


@pytest.mark.parametrize(("name", "raw"), [("drawing.png", SVG), ("page.png", HTML)])
def test_a_renamed_svg_or_html_file_is_refused(
    vision_server: ArenaServer, page, tmp_path: Path, name: str, raw: bytes
) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / name
    fake.write_bytes(raw)
    page.goto(vision_server.base + "/")
    page.set_input_files(".image-picker input[type=file]", str(fake))
    assert chosen_files(page) == 1  # the browser believes the .png name; the server does not
    page.fill("textarea[name=prompt]", "What is this?")
    page.click("form.prompt-form button[type=submit]")
    flash = page.locator("#flash .flash.error")
    flash.wait_for(state="visible")
    assert "not a PNG, JPEG or WebP image" in flash.inner_text()
    assert page.locator("#battle").count() == 0  # no battle started
    assert page.evaluate("[window.__svg, window.__html]") == [None, None]
    assert page.errors == []


def test_compare_and_chat_take_an_image_for_vision_models_only(
    vision_server: ArenaServer, page, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    picture = tmp_path / "photo.png"
    picture.write_bytes(png_bytes((250, 200, 0)))
    page.goto(vision_server.base + "/compare")
    selects = page.locator("select[name=models]")
    selects.nth(0).select_option("eye-1")
    selects.nth(1).select_option("eye-2")
    assert "(sees images)" in selects.nth(0).locator("option[value=eye-1]").inner_text()
    page.set_input_files(".image-picker input[type=file]", str(picture))
    wait_until(page, "document.querySelector('img.image-thumb').naturalWidth > 0")
    page.fill("textarea[name=prompt]", "Compare your views of this.")
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector(".answer .md", timeout=60_000)
    wait_until(page, "document.querySelectorAll('.answer .md').length === 2")
    sha = (page.get_attribute(".prompt-images img", "src") or "").rsplit("/", 1)[-1]
    assert all(sha in a for a in page.locator(".answer .md").all_inner_texts())

    page.goto(vision_server.base + "/chat")
    page.locator("select[name=models]").select_option(TEXT_ONLY)
    page.set_input_files(".image-picker input[type=file]", str(picture))
    page.fill("textarea[name=prompt]", "What is this?")
    page.click("form.prompt-form button[type=submit]")
    flash = page.locator("#flash .flash.error")
    flash.wait_for(state="visible")
    assert "does not take images" in flash.inner_text() and page.locator("#battle").count() == 0
    page.locator("select[name=models]").select_option("eye-2")
    page.click("form.prompt-form button[type=submit]")  # the same form, image still attached
    page.wait_for_selector(".answer .md", timeout=60_000)
    assert page.locator(".prompt-images img").count() == 1
    assert page.errors == []
