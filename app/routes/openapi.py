"""The OpenAPI schema, served as JSON at ``/schema`` (and ``/schema/openapi.json``).

The JSON handlers read their raw body and validate it themselves (so errors keep their own
shape), which hides the body from Litestar's schema generation; ``json_body(Model)`` puts the
model's JSON schema back into the handler's operation as its request body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from pydantic import TypeAdapter


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with each ``#/$defs/X`` reference replaced by X itself (our bodies do not nest
    themselves), so it stands alone inside an operation."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def body_schema(model: Any) -> dict[str, Any]:
    """A type's JSON schema as it is validated (pydantic's), references inlined."""
    schema = TypeAdapter(model).json_schema()
    return cast(dict[str, Any], _inline(schema, schema.get("$defs", {})))


def json_body(model: Any, description: str = "", *, partial: bool = False) -> type[Operation]:
    """An operation class for a handler whose JSON body is validated as ``model`` (with
    ``partial``, any subset of its fields)."""
    plain = body_schema(model)
    if partial:
        plain.pop("required", None)
    schema = cast(Schema, plain)  # a plain JSON-schema dict serializes as it is

    @dataclass
    class JsonBody(Operation):
        def __post_init__(self) -> None:
            media = {"application/json": OpenAPIMediaType(schema=schema)}
            self.request_body = RequestBody(content=media, description=description or None, required=True)

    return JsonBody


def config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Arena",
        version="1",
        description="The OpenAI-compatible /v1 API, the arena's JSON API and the admin API.",
        path="/schema",
        render_plugins=[JsonRenderPlugin()],
    )
