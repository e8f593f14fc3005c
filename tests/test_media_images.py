"""ImageStore.sanitize, save and load, and data URLs: Pillow on generated images, no HTTP."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from pathlib import Path

import pytest
from PIL import Image as PILImage

from app.errors import Invalid, NotFound
from app.media.images import ImageLimits, ImageStore, decode_data_url, sniff


def encode(picture: PILImage.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt, **options)
    return out.getvalue()


def photo(size: tuple[int, int] = (300, 200), mode: str = "RGB") -> PILImage.Image:
    """A noisy picture (so lossy encoders have something to do), in ``mode``."""
    return PILImage.effect_noise(size, 40).convert(mode)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images", ImageLimits(max_bytes=2_000_000, long_edge=128, max_pixels=4_000_000))


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_each_format_is_resized_and_reencoded_in_kind(store: ImageStore, fmt: str, mime: str) -> None:
    raw = encode(photo((400, 100)), fmt)
    image, width, height = store.sanitize(raw, mime)
    assert (width, height) == (128, 32)  # long edge at the limit, aspect kept
    assert image.mime == mime and sniff(image.data) == mime
    assert image.sha256 == hashlib.sha256(image.data).hexdigest()
    assert image.data != raw
    assert PILImage.open(io.BytesIO(image.data)).size == (128, 32)


def test_exif_and_metadata_are_stripped_after_orientation(store: ImageStore) -> None:
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (1.0, 2.0, 3.0)}  # GPS
    raw = encode(photo((80, 40)), "JPEG", exif=exif.tobytes(), icc_profile=b"\0" * 200, comment=b"hidden")
    assert b"SecretCam" in raw
    image, width, height = store.sanitize(raw, "image/jpeg")
    assert (width, height) == (40, 80)  # turned upright before the EXIF went away
    assert b"SecretCam" not in image.data and b"Exif" not in image.data and b"hidden" not in image.data
    clean = PILImage.open(io.BytesIO(image.data))
    assert not clean.getexif() and "icc_profile" not in clean.info


def test_png_text_chunks_and_trailing_bytes_are_dropped(store: ImageStore) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "my home address")
    raw = encode(photo((20, 20)), "PNG", pnginfo=info) + b"<script>alert(1)</script>"
    image, _w, _h = store.sanitize(raw)
    assert b"home address" not in image.data and b"script" not in image.data


def test_a_cleaned_png_is_a_fixed_point(store: ImageStore) -> None:
    """Cleaning twice gives the same bytes, so a PNG keeps its hash from server to server."""
    first, _w, _h = store.sanitize(encode(photo((400, 300), "RGBA"), "PNG"))
    again, _w, _h = store.sanitize(first.data, first.mime)
    assert again == first


@pytest.mark.parametrize(
    "raw",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"<!doctype html><html><body>hi</body></html>",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        b"%PDF-1.4\n",
    ],
)
def test_not_an_image_is_refused_by_its_bytes(store: ImageStore, raw: bytes) -> None:
    with pytest.raises(Invalid, match="not a PNG, JPEG or WebP") as caught:
        store.sanitize(raw, "image/png", param="file")
    assert caught.value.param == "file"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_images_are_refused(store: ImageStore, fmt: str) -> None:
    raw = encode(photo((200, 200)), fmt)
    with pytest.raises(Invalid, match="truncated or damaged"):
        store.sanitize(raw[: len(raw) * 2 // 3])


def test_a_corrupt_png_chunk_is_refused(store: ImageStore) -> None:
    raw = bytearray(encode(photo((50, 50)), "PNG"))
    raw[60] ^= 0xFF  # inside the first IDAT: its CRC no longer matches
    with pytest.raises(Invalid, match="truncated or damaged"):
        store.sanitize(bytes(raw))


@pytest.mark.parametrize("size", [(3000, 2000), (10_000, 10_000), (15_000, 15_000)])
def test_decompression_bombs_are_refused_before_decoding(store: ImageStore, size: tuple[int, int]) -> None:
    """Over our limit (4 Mpx here), over Pillow's warning limit, and over its error limit: a few KB each."""
    raw = encode(PILImage.new("1", size), "PNG")
    assert len(raw) < 100_000
    with pytest.raises(Invalid, match="too many pixels") as caught:
        store.sanitize(raw)
    assert caught.value.code == "image_too_many_pixels"


def test_oversized_and_empty_files_are_refused(store: ImageStore) -> None:
    with pytest.raises(Invalid, match="larger than") as caught:
        store.sanitize(b"\x89PNG\r\n\x1a\n" + b"\0" * 2_000_001)
    assert caught.value.code == "image_too_large"
    with pytest.raises(Invalid, match="empty"):
        store.sanitize(b"")


@pytest.mark.parametrize(
    ("declared", "ok"), [("image/png", False), ("image/jpeg", True), ("image/JPG", True), ("", True)]
)
def test_the_declared_type_must_match_the_bytes(store: ImageStore, declared: str, ok: bool) -> None:
    raw = encode(photo((20, 20)), "JPEG")
    if ok:
        assert store.sanitize(raw, declared)[0].mime == "image/jpeg"
    else:
        with pytest.raises(Invalid, match="sent as image/png but is image/jpeg"):
            store.sanitize(raw, declared)


def test_unusual_pixel_modes_are_converted(store: ImageStore) -> None:
    palette = PILImage.new("P", (10, 10))
    palette.info["transparency"] = 0
    for picture, fmt, mode in [
        (palette, "PNG", "RGBA"),
        (PILImage.new("I;16", (10, 10)), "PNG", None),
        (PILImage.new("CMYK", (10, 10)), "JPEG", "RGB"),
        (PILImage.new("LA", (10, 10)), "PNG", "LA"),
    ]:
        image, _w, _h = store.sanitize(encode(picture, fmt))
        decoded = PILImage.open(io.BytesIO(image.data))
        assert mode is None or decoded.mode == mode


def test_save_is_idempotent_and_load_checks_the_hash(store: ImageStore) -> None:
    image, _w, _h = store.sanitize(encode(photo(), "PNG"))
    path = store.save(image)
    assert path == store.folder / image.sha256[:2] / f"{image.sha256}.png"
    assert store.save(image) == path and path.read_bytes() == image.data
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert store.load(image.sha256) == image and store.path(image.sha256) == path
    for bad in ("0" * 64, "../etc/passwd", image.sha256.upper(), ""):
        assert store.path(bad) is None
        with pytest.raises(NotFound):
            store.load(bad)


def test_sanitize_from_many_threads_gives_one_answer(store: ImageStore) -> None:
    raws = [encode(photo((300, 300)), fmt) for fmt in ("PNG", "JPEG", "WEBP")]
    expected = [store.sanitize(raw)[0].sha256 for raw in raws]
    results: list[list[str]] = []

    def work() -> None:
        results.append([store.sanitize(raw)[0].sha256 for raw in raws])

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 6


def test_data_urls() -> None:
    payload = base64.b64encode(b"\x89PNG\r\n\x1a\nabc").decode()
    assert decode_data_url(f"data:image/png;base64,{payload}", param="p") == ("image/png", b"\x89PNG\r\n\x1a\nabc")
    assert decode_data_url(f"data:image/jpg;base64,{payload[:8]}\n{payload[8:]}", param="p")[0] == "image/jpeg"
    bad_urls = ("data:image/png,rawbytes", "data:image/png;base64,@@@", "data:image/png;base64,é+", "http://x/y.png")
    for bad in (*bad_urls, f"data:;base64{payload}"):
        with pytest.raises(Invalid) as caught:
            decode_data_url(bad, param="p")
        assert caught.value.param == "p"
    with pytest.raises(Invalid, match="larger than"):
        decode_data_url(f"data:image/png;base64,{'A' * 4000}", param="p", max_bytes=1000)
