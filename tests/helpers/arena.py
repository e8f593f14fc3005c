"""Helpers for the arena tests: an in-process client that runs the app in the test's own event
loop, an HTML tree built with the standard library's parser, an SSE parser, the CSRF header, and a
raw ASGI stream reader.

Why not litestar's AsyncTestClient: it runs the app on a portal thread with its own event loop
and blocks the caller's loop for each request, so requests cannot overlap, a stream cannot be
read while it is generated, and calling the arena directly would cross event loops.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx
from litestar import Litestar

# --------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Node]:
        """Every element below this one, depth first."""
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        """Elements matching a tag, a class and attributes (``id_`` for ``id``; ``_`` -> ``-``)."""
        want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            n
            for n in self
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k) == v for k, v in want.items())
        ]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one {tag or ''}.{cls or ''} {attrs}, found {len(found)}"
        return found[0]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return
        raise AssertionError(f"stray </{tag}>")

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


@dataclass
class SSE:
    event: str
    data: str
    id: str | None = None


def parse_sse(raw: str) -> list[SSE]:
    """Events as an EventSource sees them (data lines joined with newlines; empty data dropped)."""
    events: list[SSE] = []
    name, data, event_id = "", [], None
    for line in raw.replace("\r\n", "\n").split("\n"):
        if line == "":
            if data:
                events.append(SSE(name or "message", "\n".join(data), event_id))
            name, data, event_id = "", [], None
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
        elif key == "id":
            event_id = value
    return events


class Client(httpx.AsyncClient):
    """An httpx client over the app in this event loop; ``app`` is the app it talks to."""

    app: Litestar


@asynccontextmanager
async def serve(app: Litestar, ip: str = "127.0.0.1") -> AsyncIterator[Client]:
    """Run the app's lifespan in this loop and talk to it in-process (requests may overlap).

    The lifespan runs in a task of its own: a fixture's setup and teardown may run in different
    tasks, and the lifespan's task group must be left in the task that entered it."""
    up, down = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        async with app.lifespan():
            up.set()
            await down.wait()

    task = asyncio.create_task(lifespan())
    await asyncio.wait([task, asyncio.create_task(up.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # start-up failed: raise its error
    try:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))  # type: ignore[arg-type]
        async with Client(transport=transport, base_url="http://testserver.local", timeout=30) as client:
            client.app = app
            yield client
    finally:
        down.set()
        await task


async def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    """The header htmx sends (the page puts the token in hx-headers; the cookie comes with it)."""
    if "csrftoken" not in client.cookies:
        assert (await client.get("/")).status_code == 200
    return {"x-csrftoken": client.cookies["csrftoken"], "hx-request": "true"}


async def asgi_stream(app: Litestar, path: str, headers: dict[str, str] | None = None) -> AsyncIterator[bytes]:
    """GET ``path`` straight through ASGI, yielding body chunks as the app sends them; closing
    the generator disconnects the client (the test client buffers whole bodies, this does not)."""
    chunks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    gone = asyncio.Event()
    sent_request = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await chunks.put(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        start = await asyncio.wait_for(chunks.get(), 10)
        assert start["type"] == "http.response.start" and start["status"] == 200, start
        while True:
            message = await asyncio.wait_for(chunks.get(), 10)
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body", False):
                return
    finally:
        gone.set()
        await asyncio.wait_for(task, 10)


async def read_events(app: Litestar, path: str, count: int, headers: dict[str, str] | None = None) -> list[SSE]:
    """The first ``count`` SSE events of a live stream, then disconnect."""
    buffer = ""
    stream = asgi_stream(app, path, headers)
    try:
        async for chunk in stream:
            buffer += chunk.decode()
            if len(parse_sse(buffer)) >= count and buffer.endswith("\n\n"):
                break
    finally:
        await stream.aclose()
    return parse_sse(buffer)


def db_rows(app: Litestar, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(app.state.settings.db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def start_page_battle(client: Client, prompt: str = "Hello?", **form: Any) -> tuple[str, Node]:
    r = await client.post("/battle", data={"prompt": prompt, "mode": "anony", **form}, headers=await csrf(client))
    assert r.status_code == 200, r.text
    tree = parse_html(r.text)
    return tree.one(id_="battle").attrs["data-battle"], tree


async def finish(client: Client, battle_id: str) -> list[SSE]:
    """Follow the page's SSE stream to its ``done`` event (a turn that never ends fails here)."""
    r = await asyncio.wait_for(client.get(f"/battle/{battle_id}/events"), 30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert events[-1].event == "done"
    return events


def final_sets(events: list[SSE]) -> dict[str, Node]:
    """Each side's last ``set`` event (a live stream also starts with a snapshot of each side)."""
    return {e.event[0]: parse_html(e.data) for e in events if e.event in ("a-set", "b-set")}


def vote_buttons(tree: Node) -> list[Node]:
    return tree.all("button", cls="vote-button")
