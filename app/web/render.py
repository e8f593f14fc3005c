"""Model output is untrusted: escaped while it streams, and once complete rendered as Markdown
(raw HTML off, a single newline kept as a line break, as chat interfaces do), code-highlighted,
then sanitized. Battles, compare and chat all render answers with :func:`answer_html`."""

from __future__ import annotations

import html
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "strong",
    "em",
    "del",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "span",
    "div",
}
_ALLOWED_ATTRS = {
    "a": {"href", "title"},
    "span": {"class"},
    "div": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "ol": {"start"},
}


def _highlight(code: str, lang: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it falls back to its own escaped <pre><code>
    return highlight(code, lexer, HtmlFormatter(nowrap=False, cssclass="hl"))


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # breaks: a haiku or a list written one item a line keeps its lines after the answer completes.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True, "highlight": _highlight})
    md.enable("table").enable("strikethrough")
    return md


def stream_text(text: str) -> str:
    """A piece of an answer while it streams: escaped, nothing interpreted."""
    return html.escape(text, quote=False)


def answer_html(markdown_text: str) -> str:
    """A complete answer: Markdown with HTML off, highlighted code, then sanitized."""
    rendered = _markdown().render(markdown_text)
    return nh3.clean(
        rendered,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRS,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def highlight_css() -> str:
    return str(HtmlFormatter(cssclass="hl").get_style_defs(".hl"))
