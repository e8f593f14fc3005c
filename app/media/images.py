"""Images from visitors and API clients: checked, cleaned and stored by content hash.

Nothing a client sends is passed on raw. :meth:`ImageStore.sanitize` recognises PNG, JPEG and WebP
by their magic bytes (a renamed SVG or HTML file is refused), checks the declared type against
them, refuses decompression bombs from the header alone, decodes the whole file (a truncated one
is refused), applies the EXIF orientation, and re-encodes the pixels alone: no EXIF, no ICC
profile, no text chunks, no trailing bytes. The long edge is brought down to the limit. The
result is named by the SHA-256 of its bytes.

Everything here is blocking CPU and file work. It keeps no state in Pillow's globals (the pixel
limit is checked per call), so it is safe from several threads at once; async callers run it
with ``asyncio.to_thread`` so the event loop never decodes an image.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps

from app.engines.base import Image
from app.errors import Failed, Invalid, NotFound

# The formats we take, by MIME type: Pillow's format name and the file extension.
FORMATS = {"image/png": ("PNG", "png"), "image/jpeg": ("JPEG", "jpg"), "image/webp": ("WEBP", "webp")}
MIME_BY_EXT = {ext: mime for mime, (_fmt, ext) in FORMATS.items()}
ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
UNDECLARED = {"", "application/octet-stream"}  # a client that does not say what it sends
SHA256 = re.compile(r"[0-9a-f]{64}")
DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,")


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 15 * 1024 * 1024  # the upload as sent (decoded from base64)
    long_edge: int = 1024  # the stored image's longer side, at most
    per_conversation: int = 1  # images in one battle or one /v1 request
    max_pixels: int = 40_000_000  # width x height of the upload; more is a decompression bomb


def sniff(raw: bytes) -> str | None:
    """The MIME type the bytes really are (PNG, JPEG or WebP), or None."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def normal_mime(declared: str | None) -> str:
    """A Content-Type as a bare lower-case MIME type (``image/JPG; x=1`` -> ``image/jpeg``)."""
    mime = (declared or "").split(";")[0].strip().lower()
    return ALIASES.get(mime, mime)


def decode_data_url(url: str, *, param: str, max_bytes: int | None = None) -> tuple[str, bytes]:
    """``data:image/png;base64,...`` -> (declared MIME type, bytes). Only base64 data URLs are taken.

    ``max_bytes`` refuses an oversized payload before decoding it."""
    match = DATA_URL.match(url)
    if match is None or not match["b64"]:
        raise Invalid("An image must be a base64 data URL: data:image/png;base64,....", param=param)
    try:  # bytes.translate drops line breaks ten times faster than a regex on a 20 MB string
        payload = url[match.end() :].encode("ascii").translate(None, b" \t\r\n")
    except UnicodeEncodeError:
        raise Invalid("The image's data URL is not valid base64.", param=param) from None
    if max_bytes is not None and len(payload) // 4 * 3 > max_bytes + 2:
        raise Invalid(f"The image is larger than the {_mb(max_bytes)} limit.", param=param, code="image_too_large")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("The image's data URL is not valid base64.", param=param) from None
    return normal_mime(match["mime"]), data


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


class ImageStore:
    """Sanitises images and keeps them as files named by hash: ``folder/ab/abcd....png``."""

    def __init__(self, folder: Path, limits: ImageLimits) -> None:
        self.folder = Path(folder)
        self.limits = limits

    # -- checking --------------------------------------------------------------------------

    def sanitize(self, raw: bytes, declared_mime: str | None = None, *, param: str = "image") -> tuple[Image, int, int]:
        """Check ``raw`` and re-encode it: (clean image, width, height). Raises :class:`Invalid`."""
        mime = self._check_bytes(raw, declared_mime, param)
        fmt, _ext = FORMATS[mime]
        picture = self._decode(raw, fmt, param)
        try:
            picture = _fit(picture, self.limits.long_edge)
            data = _encode(picture, fmt, lossless=mime == "image/webp" and _webp_lossless(raw))
        except (OSError, ValueError):  # a pixel mode Pillow cannot convert (e.g. 32-bit float)
            raise Invalid("The image's pixel format is not supported.", param=param, code="invalid_image") from None
        width, height = picture.size
        return Image(data, mime, hashlib.sha256(data).hexdigest()), width, height

    def _check_bytes(self, raw: bytes, declared_mime: str | None, param: str) -> str:
        if not raw:
            raise Invalid("The image is empty.", param=param, code="invalid_image")
        if len(raw) > self.limits.max_bytes:
            raise Invalid(
                f"The image is larger than the {_mb(self.limits.max_bytes)} limit.", param=param, code="image_too_large"
            )
        mime = sniff(raw)
        if mime is None:
            raise Invalid("The file is not a PNG, JPEG or WebP image.", param=param, code="invalid_image")
        declared = normal_mime(declared_mime)
        if declared not in UNDECLARED and declared != mime:
            raise Invalid(f"The file was sent as {declared} but is {mime}.", param=param, code="image_type_mismatch")
        return mime

    def _decode(self, raw: bytes, fmt: str, param: str) -> PILImage.Image:
        """Open (header only), refuse a bomb, verify, then decode every pixel."""
        try:
            with PILImage.open(io.BytesIO(raw), formats=[fmt]) as probe:
                self._check_pixels(probe.size, param)
                probe.verify()
            picture = PILImage.open(io.BytesIO(raw), formats=[fmt])
            if fmt == "JPEG":  # libjpeg scales while decoding: much less work for a big photo
                scale = min(1.0, self.limits.long_edge / max(picture.size))
                picture.draft("RGB", (max(1, int(picture.width * scale)), max(1, int(picture.height * scale))))
            picture.load()
        except Invalid:
            raise
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
            raise self._bomb(param) from None
        except Exception:  # noqa: BLE001 - any failure to decode untrusted bytes is the file's fault
            raise Invalid(
                "The image could not be decoded; it may be truncated or damaged.", param=param, code="invalid_image"
            ) from None
        return _upright(picture)

    def _check_pixels(self, size: tuple[int, int], param: str) -> None:
        width, height = size
        if width < 1 or height < 1 or width * height > self.limits.max_pixels:
            raise self._bomb(param)

    def _bomb(self, param: str) -> Invalid:
        return Invalid(
            f"The image has too many pixels (more than {self.limits.max_pixels:,}); it may be a decompression bomb.",
            param=param,
            code="image_too_many_pixels",
        )

    # -- storing ---------------------------------------------------------------------------

    def file(self, image: Image) -> Path:
        _fmt, ext = FORMATS[image.mime]
        return self.folder / image.sha256[:2] / f"{image.sha256}.{ext}"

    def save(self, image: Image) -> Path:
        """Write the image under its hash (atomically; a file already there is kept)."""
        target = self.file(image)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(image.data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def path(self, sha256: str) -> Path | None:
        """The stored file of ``sha256``, or None."""
        if not SHA256.fullmatch(sha256):
            return None
        for ext in MIME_BY_EXT:
            candidate = self.folder / sha256[:2] / f"{sha256}.{ext}"
            if candidate.is_file():
                return candidate
        return None

    def load(self, sha256: str) -> Image:
        """The stored image of ``sha256``; :class:`NotFound` when there is none."""
        if not SHA256.fullmatch(sha256):
            raise NotFound("No such image.", param="sha256")
        found = self.path(sha256)
        if found is None:
            raise NotFound("No such image.", param="sha256")
        data = found.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise Failed(f"The stored image {sha256} is damaged.")
        return Image(data, MIME_BY_EXT[found.suffix[1:]], sha256)


def _upright(picture: PILImage.Image) -> PILImage.Image:
    """The EXIF orientation applied to the pixels; a damaged EXIF block is ignored (it is dropped anyway)."""
    try:
        return ImageOps.exif_transpose(picture) or picture
    except Exception:  # noqa: BLE001 - metadata we throw away may not refuse an image
        return picture


def _fit(picture: PILImage.Image, long_edge: int) -> PILImage.Image:
    """Pixels only, in a mode every encoder takes, with the long edge at most ``long_edge``."""
    if picture.mode not in ("RGB", "RGBA", "L", "LA"):
        alpha = picture.mode in ("PA", "RGBa", "La") or "transparency" in picture.info
        picture = picture.convert("RGBA" if alpha else "RGB")
    scale = long_edge / max(picture.size)
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, PILImage.Resampling.LANCZOS)
    # A new image from the raw pixels: nothing of the file (EXIF, ICC, text, XMP) comes along.
    return PILImage.frombytes(picture.mode, picture.size, picture.tobytes())


def _encode(picture: PILImage.Image, fmt: str, *, lossless: bool) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        if picture.mode not in ("RGB", "L"):
            picture = picture.convert("RGB")
        picture.save(out, "JPEG", quality=90)
    elif fmt == "WEBP":
        picture.save(out, "WEBP", lossless=True) if lossless else picture.save(out, "WEBP", quality=90)
    else:
        picture.save(out, "PNG")
    return out.getvalue()


def _webp_lossless(raw: bytes) -> bool:
    """A lossless WebP (a VP8L chunk) stays lossless, so cleaning it twice gives the same bytes."""
    return raw[12:16] == b"VP8L" or (raw[12:16] == b"VP8X" and b"VP8L" in raw[30:4096])
