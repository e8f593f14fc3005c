"""The OpenAI-compatible ``/v1`` API: thin handlers over the registry and engines."""

from __future__ import annotations

import hmac
import logging
import uuid
from contextlib import AbstractContextManager
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Stream

from app.arena.limits import held
from app.engines.base import GenerationRequest
from app.errors import Forbidden
from app.moderation.log import Origin
from app.openai import images, schema
from app.openai.stream import Completion, finish_reason, stream_events
from app.registry import generate
from app.registry.core import ModelEntry
from app.routes.common import visitor
from app.routes.errors import APIError, unauthorized
from app.routes.openapi import json_body

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    keys: list[str] = connection.app.state.settings.api_key
    if not keys:
        return
    scheme, _sep, given = connection.headers.get("authorization", "").partition(" ")
    token = given.strip() if scheme.lower() == "bearer" else ""
    ok = False
    for key in keys:  # no early exit: the comparison takes the same time for every key
        ok |= hmac.compare_digest(token.encode(), key.encode())
    if not ok:
        raise unauthorized()


def json_guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    """A request with a body sends it as ``application/json`` (a charset may follow). A form or
    text/plain POST needs no CORS preflight, so any web page could otherwise make a visitor's
    browser generate here; a JSON one is preflighted, and /v1 grants no CORS."""
    if connection.scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise APIError(
            415,
            "Send the body as JSON, with Content-Type: application/json.",
            param="Content-Type",
            code="unsupported_media_type",
        )


@get("/models")
async def list_models(state: State) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": e.id,
                "object": "model",
                "created": e.created,
                "owned_by": e.spec.metadata.organization or "arena",
            }
            for e in state.models.all()
            if not e.spec.anony_only
        ],
    }


def _log_unknown(req: schema._Sampling) -> None:
    if req.model_extra:
        log.info("ignoring unknown request fields: %s", ", ".join(sorted(req.model_extra)))


async def _respond(
    request: Request[Any, Any, Any], state: State, req: schema._Sampling, gen_request: GenerationRequest, chat: bool
) -> Response[Any] | Stream:
    slot = state.streams.take(visitor(request, state)[0]) if req.stream else None  # before generating
    try:
        started = await generate.start(state.models, state.metrics, req.model, gen_request)
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    completion = Completion(req.model, chat=chat, include_usage=req.include_usage)
    if slot is not None:
        return Stream(
            held(slot, stream_events(completion, started.first, started.rest)),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    text, last = [started.first.text], started.first
    try:
        while last.finish_reason is None:
            last = await anext(started.rest)
            text.append(last.text)
    finally:
        await started.rest.aclose()
    body = completion.response(
        "".join(text), finish_reason(last.finish_reason), last.prompt_tokens, last.completion_tokens
    )
    return Response(body)


def _admitted(request: Request[Any, Any, Any], state: State, entry: ModelEntry) -> AbstractContextManager[None]:
    """The one rate limiter, as for battles: per client and per model; a request refused inside
    the block (a bad image, a blocked prompt, a context overflow) counts nothing. A model kept to
    anonymous battles (``anony_only``) is not served by name here either."""
    if entry.spec.anony_only:
        raise Forbidden(f"The model `{entry.id}` is only in anonymous battles.", param="model", code="model_anony_only")
    return state.throttle.admitted(visitor(request, state)[1], [entry.id])  # type: ignore[no-any-return]


def _origin(request: Request[Any, Any, Any], state: State, entry: ModelEntry) -> Origin:
    """Who sent a /v1 prompt, for the moderation log."""
    return Origin("v1", voter_hash=visitor(request, state)[1], model=entry.id)


def _generation(req: schema._Sampling, entry: ModelEntry, max_tokens: int | None, **kw: Any) -> GenerationRequest:
    filled: dict[str, Any] = generate.request_defaults(
        entry,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        min_p=req.min_p,
        repeat_penalty=req.repeat_penalty,
        max_tokens=max_tokens,
    )
    return GenerationRequest(
        request_id=uuid.uuid4().hex,
        max_tokens=int(filled["max_tokens"]),
        max_tokens_explicit=max_tokens is not None,
        temperature=float(filled["temperature"]),
        top_p=float(filled["top_p"]),
        top_k=int(filled["top_k"]),
        min_p=float(filled["min_p"]),
        repeat_penalty=float(filled["repeat_penalty"]),
        stop=req.stops(),
        seed=req.seed,
        **kw,
    )


@post("/chat/completions", status_code=200, operation_class=json_body(schema.ChatCompletionRequest))
async def chat_completions(request: Request[Any, Any, Any], state: State) -> Response[Any] | Stream:
    req = schema.parse(schema.ChatCompletionRequest, await request.body())
    _log_unknown(req)
    entry = await generate.resolve(state.models, req.model)
    with _admitted(request, state, entry):
        messages = await images.conversation(req, entry, state.images, state.settings.image_url_domains)
        await state.moderation.check_messages(messages, _origin(request, state, entry), param="messages")
        gen = _generation(req, entry, req.token_limit(), messages=messages)
        return await _respond(request, state, req, gen, chat=True)


@post("/completions", status_code=200, operation_class=json_body(schema.CompletionRequest))
async def completions(request: Request[Any, Any, Any], state: State) -> Response[Any] | Stream:
    req = schema.parse(schema.CompletionRequest, await request.body())
    _log_unknown(req)
    entry = await generate.resolve(state.models, req.model)
    with _admitted(request, state, entry):
        await state.moderation.check([req.prompt_text()], [], _origin(request, state, entry), param="prompt")
        limit = req.max_tokens if req.max_tokens is not None else 16  # OpenAI's default here
        gen = _generation(req, entry, limit, prompt=req.prompt_text())
        gen.max_tokens_explicit = req.max_tokens is not None
        return await _respond(request, state, req, gen, chat=False)


router = Router(
    path="/v1",
    route_handlers=[list_models, chat_completions, completions],
    guards=[api_key_guard, json_guard],
)
