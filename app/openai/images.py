"""Image parts of a /v1 chat request, turned into cleaned images before any generation starts.

Cheap refusals come first (too many images, a model that cannot see, a remote URL while fetching
is off), then the decoding and re-encoding, which runs in a worker thread. /v1 keeps nothing: the
cleaned images live only as long as the request (battles store theirs; see ``app.arena``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.engines.base import ChatMessage, GenerationRequest, Image
from app.errors import Invalid
from app.media import fetch
from app.media.images import ImageStore, decode_data_url
from app.openai.schema import ChatCompletionRequest
from app.registry import generate
from app.registry.core import ModelEntry

FETCH_TIMEOUT = 10.0
# Stands in for a message's images in the early vision check, which only asks whether there are any.
_PENDING = (Image(b"", "image/png", ""),)


def url_param(message: int, part: int) -> str:
    return f"messages[{message}].content[{part}].image_url.url"


async def conversation(
    req: ChatCompletionRequest, entry: ModelEntry, store: ImageStore, domains: Sequence[str] = ()
) -> list[ChatMessage]:
    """The request's messages with their images checked, cleaned and attached; :class:`Invalid`
    naming the part at fault otherwise."""
    found = req.image_urls()
    if not found:
        return req.chat_messages()
    limit = store.limits.per_conversation
    if len(found) > limit:
        i, j, _url = found[limit]
        raise Invalid(
            f"At most {limit} image(s) per conversation are accepted." if limit else "This server takes no images.",
            param=url_param(i, j),
            code="too_many_images",
        )
    early = req.chat_messages({i: _PENDING for i, _j, _url in found})
    generate.check_vision(entry, GenerationRequest("", messages=early))
    sources: list[tuple[str, str | bytes, str]] = []  # (param, data URL or fetched bytes, declared type)
    for i, j, url in found:
        param = url_param(i, j)
        if url.startswith("data:"):
            sources.append((param, url, ""))
        elif url.split(":", 1)[0].lower() in ("http", "https"):
            mime, raw = await fetch.fetch(
                url, domains, max_bytes=store.limits.max_bytes, timeout=FETCH_TIMEOUT, param=param
            )
            sources.append((param, raw, mime))
        else:
            raise Invalid("An image URL must be a data: URL (or https from an allowed domain).", param=param)
    cleaned = await asyncio.to_thread(_clean, store, sources)
    images: dict[int, tuple[Image, ...]] = {}
    for (i, _j, _url), image in zip(found, cleaned, strict=True):
        images[i] = (*images.get(i, ()), image)
    return req.chat_messages(images)


def _clean(store: ImageStore, sources: list[tuple[str, str | bytes, str]]) -> list[Image]:
    """Decode and re-encode each image (blocking: run in a worker thread)."""
    out = []
    for param, source, declared in sources:
        if isinstance(source, str):
            declared, raw = decode_data_url(source, param=param, max_bytes=store.limits.max_bytes)
        else:
            raw = source
        image, _width, _height = store.sanitize(raw, declared, param=param)
        out.append(image)
    return out
