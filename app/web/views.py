"""The Jinja environment and the two ways a screen is rendered: the whole page, or one of its
named blocks alone for htmx to swap (jinja2-fragments). A screen's context is a dataclass from
:mod:`app.web.screens` (or any dataclass built the same way)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar.plugins.htmx import HTMXTemplate
from litestar.response import Template

from app.web.render import answer_html

HERE = Path(__file__).parent.parent  # app/: templates/ and static/ live there
VENDOR = HERE / "static" / "vendor"
VENDORED = {"htmx_js": "htmx", "htmx_sse_js": "htmx-ext-sse"}  # template global -> file name prefix


class StaticMissing(RuntimeError):
    """A vendored static file is not installed: the pages would load without it."""


def vendor_file(prefix: str, folder: Path | None = None) -> str:
    """The installed vendor file's URL, e.g. /static/vendor/htmx-2.0.11.min.js (its version is in
    its name); :class:`StaticMissing` when it is not there."""
    folder = folder or VENDOR
    found = sorted(p.name for p in folder.glob(prefix + "-[0-9]*.min.js"))
    if not found:
        raise StaticMissing(f"{prefix} is not installed in {folder}: run `make static` to fetch it.")
    return f"/static/vendor/{found[-1]}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["answer"] = answer_html
    for name, prefix in VENDORED.items():
        env.globals[name] = vendor_file(prefix)
    return env


def context_of(screen: Any) -> dict[str, Any]:
    """A screen dataclass as the template's variables (shallow: fields keep their objects)."""
    if not is_dataclass(screen) or isinstance(screen, type):
        raise TypeError(f"a screen context is a dataclass instance, not {type(screen).__name__}")
    return {f.name: getattr(screen, f.name) for f in fields(screen)}


def page(template: str, screen: Any) -> Template:
    return Template(template_name=template, context=context_of(screen))


def fragment(template: str, block: str, screen: Any, **htmx: Any) -> HTMXBlockTemplate:
    """One named block of ``template``; ``htmx`` takes HTMXTemplate's response headers
    (``re_target``, ``re_swap``, ``push_url``...)."""
    return HTMXBlockTemplate(template_name=template, block_name=block, context=context_of(screen), **htmx)


FLASH = '<div class="flash error">{{ message }}</div>'


def flash(message: str, status: int, headers: dict[str, str] | None = None) -> HTMXTemplate:
    """An error shown above the screen: htmx retargets it to the page's #flash element."""
    return HTMXTemplate(
        template_str=FLASH,
        context={"message": message},
        re_target="#flash",
        re_swap="innerHTML",
        status_code=status,
        headers=headers or {},
        media_type="text/html",
    )
