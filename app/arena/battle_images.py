"""Images in battles: the visitor's uploads checked and re-encoded off the event loop, which
models may answer about an image, and loading a battle's images back for the engines.

An upload is never passed on raw: the image store (``app.media.images``) decodes, verifies,
strips, resizes and re-encodes it, and refuses anything else with a 4xx before anything is
stored. Files are written only once every check has passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.engines.base import Image
from app.errors import Invalid

if TYPE_CHECKING:
    from app.arena.live import LiveBattle
    from app.media.images import ImageStore
    from app.registry.core import ModelEntry, Registry

Upload = tuple[bytes, str | None]  # the raw bytes and the content type the client declared


@dataclass(frozen=True, slots=True)
class Checked:
    """An upload that passed: the re-encoded image and its size in pixels."""

    image: Image
    width: int
    height: int


def sees(entry: ModelEntry) -> bool:
    """The model takes images: its models file says ``vision = true`` and its engine (once
    loaded) can."""
    return entry.spec.vision and (entry.engine is None or entry.engine.vision)


def plural(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def check_count(store: ImageStore | None, new: int, already: int = 0, *, param: str = "images") -> None:
    """Refuse images when the arena takes none, or more than a conversation may hold."""
    if not new:
        return
    if store is None or store.limits.per_conversation == 0:
        raise Invalid("This arena does not take images.", param=param, code="images_off")
    limit = store.limits.per_conversation
    if already + new > limit:
        raise Invalid(
            f"A conversation takes at most {plural(limit)}; this one would have {already + new}."
            " Start a new conversation for another image.",
            param=param,
            code="too_many_images",
        )


def follow_up_refusal(battle: LiveBattle, models: Registry) -> str:
    """Why a follow-up in ``battle`` may not carry an image, or "".

    An anonymous battle takes images only when it began with one: its pair was then drawn from
    the vision models, so allowing it tells nothing about who they are (allowing it after a
    text-only start would tell whether both drawn models happen to see)."""
    if battle.mode == "anony" and battle.image_count == 0:
        return "In an anonymous battle the image goes with the first prompt; start a new battle with it."
    if not all(m in models.entries and sees(models.get(m)) for m in battle.models.values()):
        who = "The model of this chat does" if battle.mode == "direct" else "The models of this battle do"
        return f"{who} not take images; start a new one with the image."
    return ""


def check_follow_up(battle: LiveBattle, models: Registry) -> None:
    why = follow_up_refusal(battle, models)
    if why:
        raise Invalid(why, param="images", code="model_not_vision")


async def check_uploads(
    store: ImageStore | None, uploads: Sequence[Upload], already: int = 0, *, param: str = "images"
) -> list[Checked]:
    """Each upload sanitized (in a worker thread); Invalid (4xx) on the first bad one, or when
    the conversation would hold more than the configured number of images."""
    check_count(store, len(uploads), already, param=param)
    if not uploads:
        return []
    assert store is not None
    checked = []
    for index, (raw, mime) in enumerate(uploads):
        image, width, height = await asyncio.to_thread(store.sanitize, raw, mime, param=f"{param}[{index}]")
        checked.append(Checked(image, width, height))
    return checked


async def save_files(store: ImageStore | None, checked: Sequence[Checked]) -> None:
    """Write the files (named by content hash, so writing one twice is harmless)."""
    for item in checked:
        assert store is not None
        await asyncio.to_thread(store.save, item.image)


async def load_turns(store: ImageStore | None, turns: Mapping[int, Sequence[str]]) -> dict[int, tuple[Image, ...]]:
    """The images of each turn, read back from their files (turn number -> images)."""
    if not turns or store is None:
        return {}
    loaded: dict[str, Image] = {}
    out: dict[int, tuple[Image, ...]] = {}
    for turn, hashes in turns.items():
        for sha in hashes:
            if sha not in loaded:
                loaded[sha] = await asyncio.to_thread(store.load, sha)
        out[turn] = tuple(loaded[sha] for sha in hashes)
    return out
