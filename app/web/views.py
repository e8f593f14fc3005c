"""The Jinja environment and the two ways a screen is rendered: the whole page, or one of its
named blocks alone for htmx to swap (jinja2-fragments)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jinja2_fragments import render_block
from litestar import Request, Response
from litestar.response import Template
from litestar.template.base import csrf_token

from app.web.render import answer_html

HERE = Path(__file__).parent.parent  # app/: templates/ and static/ live there
VENDOR = HERE / "static" / "vendor"


def _vendor(prefix: str) -> str:
    """The installed vendor file's name, e.g. htmx-2.0.11.min.js (its version is in its name)."""
    found = sorted(p.name for p in VENDOR.glob(prefix + "-[0-9]*.min.js"))
    return f"/static/vendor/{found[-1]}" if found else ""


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["answer"] = answer_html
    env.globals["htmx_js"] = _vendor("htmx")
    env.globals["htmx_sse_js"] = _vendor("htmx-ext-sse")
    return env


def page(request: Request[Any, Any, Any], template: str, **context: Any) -> Template:
    return Template(template_name=template, context=context)


def block(
    request: Request[Any, Any, Any], template: str, name: str, status: int = 200, **context: Any
) -> Response[str]:
    context.setdefault("request", request)
    context.setdefault("csrf_token", lambda: csrf_token({"request": request}))
    html = render_block(environment(), template, name, **context)
    return Response(html, media_type="text/html", status_code=status)


def flash(message: str, status: int, headers: dict[str, str] | None = None) -> Response[str]:
    """An error shown above the screen: htmx retargets it to the page's #flash element."""
    html = environment().from_string('<div class="flash error">{{ m }}</div>').render(m=message)
    return Response(
        html,
        status_code=status,
        media_type="text/html",
        headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML", **(headers or {})},
    )


def render(request: Request[Any, Any, Any], template: str, name: str, **context: Any) -> str:
    context.setdefault("request", request)
    return render_block(environment(), template, name, **context)
