"""The JSON arena API under /api/v1: battles for scripts, bots and private-arena tooling.

Same rules as the pages; the models of an anonymous battle are named only after the vote.
Images go in the JSON body as base64 ``data:`` URLs (``images``), so the body stays JSON and the
API keeps its one media type; a battle's turns list their images' hashes and URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

from litestar import Request, Router, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Stream
from pydantic import BaseModel, ConfigDict, Field

from app.arena.battle_images import Upload, check_count
from app.arena.limits import held
from app.arena.live import Event, LiveBattle
from app.arena.service import Arena
from app.errors import validated, whole_number
from app.media.images import decode_data_url
from app.openai.stream import sse
from app.routes.common import limit, visitor
from app.routes.errors import APIError
from app.routes.openapi import json_body

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


IMAGES_FIELD: Any = Field(
    default_factory=list,
    description="Images for this prompt, as base64 data URLs (data:image/png;base64,...): PNG, JPEG or WebP.",
)


class NewBattleBody(_Body):
    prompt: str
    mode: Literal["anony", "named"] = "anony"
    models: list[str] | None = None
    wait: bool = False
    images: list[str] = IMAGES_FIELD


class MessageBody(_Body):
    prompt: str
    wait: bool = False
    images: list[str] = IMAGES_FIELD


class VoteBody(_Body):
    winner: Literal["model_a", "model_b", "tie", "tie (bothbad)"] = Field()


async def _json_body(request: Request[Any, Any, Any]) -> bytes:
    """The body of a JSON request. Requiring the JSON media type keeps other sites' pages out:
    a browser sends it cross-origin only after a CORS preflight, which this API never grants, so
    visitors' browsers cannot be made to vote or start battles for another site (the pages' forms
    have CSRF tokens instead)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise APIError(415, "Send the body as JSON, with Content-Type: application/json.")
    return await request.body()


async def _uploads(arena: Arena, urls: list[str]) -> list[Upload]:
    """The body's data URLs as (bytes, declared type); one too large is refused before decoding,
    and the base64 is decoded in a worker thread, off the event loop."""
    check_count(arena.images, len(urls))  # before decoding any of them
    if not urls:
        return []
    max_bytes = arena.images.limits.max_bytes if arena.images is not None else None
    return await asyncio.to_thread(_decode, urls, max_bytes)


def _decode(urls: list[str], max_bytes: int | None) -> list[Upload]:
    uploads: list[Upload] = []
    for index, url in enumerate(urls):
        mime, data = decode_data_url(url, param=f"images[{index}]", max_bytes=max_bytes)
        uploads.append((data, mime))
    return uploads


def revealed(battle: LiveBattle) -> bool:
    """The models are named, and so is what could tell them apart (each side's finish_reason,
    which shows a preset's max_tokens), once the vote is in or outside anonymous battles."""
    return battle.voted or battle.mode != "anony"


def _turns(battle: LiveBattle) -> list[dict[str, Any]]:
    reveal = revealed(battle)
    turns: list[dict[str, Any]] = []
    for number, (_prompt, answers) in enumerate(battle.history, start=1):
        current = battle.turn if battle.turn is not None and battle.turn.number == number else None
        row: dict[str, Any] = {}
        if battle.images.get(number):
            row["images"] = [
                {"sha256": sha, "url": f"/battle/{battle.id}/images/{sha}"} for sha in battle.images[number]
            ]
        for side in battle.sides:
            state = current.sides[side] if current is not None else None
            row[side] = {
                "text": answers.get(side, ""),
                "finish_reason": (state.finish_reason or None) if state and reveal else None,
                "error": (state.error or None) if state else None,
            }
        turns.append(row)
    return turns


async def _started(arena: Arena, battle: LiveBattle, wait: bool, **out: Any) -> dict[str, Any]:
    """The answer to a new battle or turn: ``out``, plus every turn's answers once done if ``wait``."""
    if wait:
        await arena.wait(battle)
        out["turns"] = _turns(battle)
    return out


@post("/battles", status_code=201, operation_class=json_body(NewBattleBody))
async def create_battle(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    body = validated(NewBattleBody, await _json_body(request))
    ip, voter = visitor(request, state)
    limit(state, "battle", ip)
    arena: Arena = state.arena
    images = await _uploads(arena, body.images)
    battle = await arena.start(body.prompt, mode=body.mode, voter_hash=voter, models=body.models, images=images)
    return await _started(arena, battle, body.wait, id=battle.id)


@post("/battles/{battle_id:str}/messages", status_code=201, operation_class=json_body(MessageBody))
async def add_message(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    body = validated(MessageBody, await _json_body(request))
    arena: Arena = state.arena
    images = await _uploads(arena, body.images)
    battle = await arena.add_turn(battle_id, body.prompt, client=visitor(request, state)[1], images=images)
    return await _started(arena, battle, body.wait, id=battle.id, turn=len(battle.history) + 1)


@post("/battles/{battle_id:str}/vote", status_code=200, operation_class=json_body(VoteBody))
async def vote(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> dict[str, str]:
    body = validated(VoteBody, await _json_body(request))
    ip, voter = visitor(request, state)
    limit(state, "vote", ip)
    model_a, model_b = await state.arena.vote(battle_id, body.winner, voter)
    return {"model_a": model_a, "model_b": model_b}


@get("/battles/{battle_id:str}")
async def battle_state(battle_id: FromPath[str], state: State) -> dict[str, Any]:
    battle: LiveBattle = await state.arena.get(battle_id)
    reveal = revealed(battle)
    return {
        "id": battle.id,
        "mode": battle.mode,
        "status": "voted"
        if battle.voted
        else "interrupted"
        if battle.interrupted
        else ("failed" if battle.failed else ("generating" if battle.busy else "open")),
        "turns": _turns(battle),
        "models": ({"a": battle.models["a"], "b": battle.models.get("b")} if reveal else None),
    }


def _json_event(event_id: int | None, event: Event, reveal: bool) -> bytes:
    head = b"" if event_id is None else b"id: %d\n" % event_id
    if event.kind == "delta":
        return head + b"event: " + event.side.encode() + b"\n" + sse({"text": event.text})
    if event.kind == "set":
        payload = {
            "text": event.text,
            "finished": event.finished,
            "finish_reason": (event.finish_reason or None) if reveal else None,
            "error": event.error or None,
        }
        return head + b"event: " + event.side.encode() + b"-set\n" + sse(payload)
    return head + b"event: done\n" + sse({})


def last_event_id(request: Request[Any, Any, Any]) -> int | None:
    """The id a reconnecting EventSource sends back: one of ours (a whole number), or a 400."""
    value = request.headers.get("last-event-id", "").strip()
    return whole_number(value, "Last-Event-ID") if value else None


@get("/battles/{battle_id:str}/events")
async def battle_events(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> Stream:
    arena: Arena = state.arena
    client = visitor(request, state)[1]
    battle = await arena.owned(battle_id, client)  # a 404 before the stream starts
    resume = last_event_id(request)
    slot = state.streams.take(visitor(request, state)[0])  # at most --max-streams-per-client open

    async def body() -> AsyncIterator[bytes]:
        async for event_id, event in arena.events(battle_id, resume, client=client):
            yield _json_event(event_id, event, revealed(battle))

    return Stream(held(slot, body()), media_type="text/event-stream", headers=SSE_HEADERS)


router = Router(
    path="/api/v1",
    route_handlers=[create_battle, add_message, vote, battle_state, battle_events],
)
