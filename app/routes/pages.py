"""HTML pages for battles, side-by-side comparison and direct chat: thin handlers over the arena.

Every mutation answers with the screen's ``arena`` block for htmx to swap; the answers stream
over one SSE connection per turn whose events carry HTML (escaped while streaming).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.params import FromPath
from litestar.response import Redirect, Stream, Template

from app.arena.battle_images import Upload
from app.arena.limits import held
from app.arena.live import Event, LiveBattle
from app.arena.service import Arena
from app.errors import Invalid, whole_number
from app.routes.admin import is_admin
from app.routes.arena_api import SSE_HEADERS, last_event_id
from app.routes.common import limit, visitor
from app.web.render import stream_text
from app.web.screens import ARENA_SCREENS, DOCS, ArenaScreen, arena_screen, arena_size, doc_screen
from app.web.views import environment, fragment, page


def _screen(state: State, mode: str, battle: LiveBattle | None, owner: bool = True) -> ArenaScreen:
    images = state.arena.images
    per_conversation, max_bytes = (images.limits.per_conversation, images.limits.max_bytes) if images else (0, 0)
    drawable = arena_size(state.arena.eligible())
    return arena_screen(mode, battle, state.models, state.arena.limits, per_conversation, max_bytes, drawable, owner)


async def _uploads(form: Any) -> list[Upload]:
    """The form's ``image`` files (raw bytes and the browser's declared type); an empty file
    input (nothing picked) is no image."""
    uploads: list[Upload] = []
    for item in form.getall("image") if "image" in form else []:
        if isinstance(item, UploadFile):
            data = await item.read()
            if data or item.filename:
                uploads.append((data, item.content_type))
        elif item:
            raise Invalid("Send the image as a file (multipart/form-data).", param="image")
    return uploads


def _page(state: State, mode: str, battle: LiveBattle | None, owner: bool = True) -> Template:
    screen = _screen(state, mode, battle, owner)
    return page(screen.template, screen)


def _start_page(state: State, mode: str) -> Template:
    """The start page of an open mode; a closed one (--modes) is a 403."""
    state.arena.check_mode(mode)
    return _page(state, mode, None)


def _arena_block(state: State, battle: LiveBattle) -> HTMXBlockTemplate:
    screen = _screen(state, battle.mode, battle)
    return fragment(screen.template, "arena", screen)


@get("/")
async def battle_page(state: State) -> Template | Redirect:
    modes = state.arena.limits.modes
    if "anony" not in modes:  # the home link leads to the first open mode
        return Redirect(ARENA_SCREENS[modes[0]][2])
    return _start_page(state, "anony")


@get("/compare")
async def compare_page(state: State) -> Template:
    return _start_page(state, "named")


@get("/chat")
async def chat_page(state: State) -> Template:
    return _start_page(state, "direct")


@get(DOCS["add-a-model"].url)
async def add_a_model_page() -> Template:
    """README's "Add your own model", served by the arena itself (no network needed)."""
    return page("doc.html", doc_screen("add-a-model"))


@get("/battle/{battle_id:str}")
async def show_battle(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> Template:
    """A battle's own URL: its visitor gets it whole; a shared link shows anyone else the same
    battle read-only (no controls, no stream, no images)."""
    battle = await state.arena.get(battle_id)
    return _page(state, battle.mode, battle, owner=battle.owned_by(visitor(request, state)[1]))


@post("/battle", status_code=200)
async def start_battle(request: Request[Any, Any, Any], state: State) -> HTMXBlockTemplate:
    form = await request.form()
    ip, voter = visitor(request, state)
    limit(state, "battle", ip)
    models = [str(m) for m in form.getall("models")] if "models" in form else None
    mode, prompt = str(form.get("mode") or "anony"), str(form.get("prompt") or "")
    images = await _uploads(form)
    battle = await state.arena.start(prompt, mode=mode, voter_hash=voter, models=models, images=images)
    return _arena_block(state, battle)


@post("/battle/{battle_id:str}/turn", status_code=200)
async def next_turn(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> HTMXBlockTemplate:
    form = await request.form()
    client = visitor(request, state)[1]
    images = await _uploads(form)
    battle = await state.arena.add_turn(battle_id, str(form.get("prompt") or ""), client=client, images=images)
    return _arena_block(state, battle)


IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "private, max-age=86400",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@get("/battle/{battle_id:str}/images/{sha256:str}")
async def battle_image(
    battle_id: FromPath[str], sha256: FromPath[str], request: Request[Any, Any, Any], state: State
) -> Response[bytes]:
    """An image of a battle, only for the visitor who started it and for admins; anyone else
    gets the same 404 as for an image that does not exist."""
    voter = visitor(request, state)[1]
    image = await state.arena.image(battle_id, sha256, voter, admin=is_admin(request))
    return Response(image.data, media_type=image.mime, headers=IMAGE_HEADERS)


@post("/battle/{battle_id:str}/stop", status_code=200)
async def stop(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> Response[str]:
    """Stops both sides; the answers so far arrive as their final SSE events."""
    limit(state, "stop", visitor(request, state)[0])
    await state.arena.stop(battle_id, client=visitor(request, state)[1])
    return Response("", status_code=200, media_type="text/html")


@post("/battle/{battle_id:str}/regenerate", status_code=200)
async def regenerate(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> HTMXBlockTemplate:
    client = visitor(request, state)[1]
    return _arena_block(state, await state.arena.regenerate(battle_id, client=client))


@post("/battle/{battle_id:str}/vote", status_code=200)
async def vote(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> HTMXBlockTemplate:
    form = await request.form()
    ip, voter = visitor(request, state)
    limit(state, "vote", ip)
    await state.arena.vote(battle_id, str(form.get("winner") or ""), voter)
    return _arena_block(state, await state.arena.get(battle_id))


@post("/battle/{battle_id:str}/feedback", status_code=200)
async def feedback(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> Response[str]:
    limit(state, "feedback", visitor(request, state)[0])
    form = await request.form()
    kind = str(form.get("kind") or "")
    message_id = whole_number(str(form.get("message_id") or ""), "message_id")
    await state.arena.feedback(battle_id, message_id, kind, client=visitor(request, state)[1])
    thanks = {"up": "Thanks: marked good.", "down": "Thanks: marked bad.", "flag": "Flagged for review."}[kind]
    return Response(f'<span class="thanks">{thanks}</span>', media_type="text/html")


def _sse(name: str, html: str, event_id: int | None) -> bytes:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {name}")
    # Not stripped: a delta may be just "\n\n" (a paragraph break), which must reach the page.
    text = html.replace("\r\n", "\n").replace("\r", "\n")
    lines += [f"data: {line}" for line in text.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


@get("/battle/{battle_id:str}/events")
async def events(battle_id: FromPath[str], request: Request[Any, Any, Any], state: State) -> Stream:
    arena: Arena = state.arena
    client = visitor(request, state)[1]
    battle = await arena.owned(battle_id, client)  # a 404 before the stream starts
    parts = environment().get_template("_battle_parts.html").module
    resume = last_event_id(request)

    slot = state.streams.take(visitor(request, state)[0])  # at most --max-streams-per-client open

    async def body() -> AsyncIterator[bytes]:
        async for event_id, event in arena.events(battle_id, resume, client=client):
            yield _render_event(parts, battle, event, event_id, state)

    return Stream(held(slot, body()), media_type="text/event-stream", headers=SSE_HEADERS)


def _render_event(parts: Any, battle: LiveBattle, event: Event, event_id: int | None, state: State) -> bytes:
    if event.kind == "delta":
        return _sse(event.side, stream_text(event.text), event_id)
    if event.kind == "set":
        html = str(
            parts.side_body(
                battle.id, battle.mode, event.side, event.text, event.finished, event.error, event.message_id
            )
        )
        return _sse(f"{event.side}-set", html.strip("\n"), event_id)
    html = str(parts.controls(battle, _screen(state, battle.mode, battle).view))
    return _sse("done", html.strip("\n"), event_id)


route_handlers = [
    battle_page,
    compare_page,
    chat_page,
    add_a_model_page,
    show_battle,
    start_battle,
    next_turn,
    battle_image,
    stop,
    regenerate,
    vote,
    feedback,
    events,
]
