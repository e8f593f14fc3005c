"""How long a token takes from the engine to the browser's SSE stream, with 100 battles at once.

    python bench/sse.py [--battles 100] [--tokens 100] [--delay 0.02] [--stream html|json]

How it is measured. The server is the real app (``create_app`` under uvicorn, in a child process)
whose engines are replaced, at start-up, by a timestamping engine: it yields each token as the
text ``"<time.monotonic()> "``, taken the moment it yields. Linux's monotonic clock is one clock
for every process on the machine, so the client (this process, raw asyncio sockets, no httpx)
subtracts that stamp from the moment its read returns the event: engine yield -> arena event
log -> SSE rendering -> uvicorn -> socket -> client. Each battle's prompt carries a start time,
so all battles begin generating together, after every client has connected; every token then
arrives as a live delta (none is folded into a snapshot).

Both sides of each battle stream, so 100 battles are 200 token streams on one connection each.
By default the client reads the pages' HTML stream (/battle/{id}/events), as the browser does.

Anchors, measured in the same run with the same client:
  * the arena with 1 battle (the same path, no load);
  * a trivial raw-asyncio SSE server that sends the same timestamped tokens on the same schedule
    (two concurrent writers per connection), i.e. the floor of this machine, client and clock.
No assertions on time: this prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.server import free_port  # noqa: E402

MODELS = """
[[models]]
id = "alpha"
engine = "scripted"

[[models]]
id = "beta"
engine = "scripted"
"""


# -- the server under test: the arena with timestamping engines -----------------------------------


def serve_arena(port: int, workdir: Path, tokens: int, delay: float) -> None:
    import uvicorn

    from app.engines.base import Delta, Engine, GenerationRequest
    from app.server import create_app
    from app.settings import Settings

    class StampEngine(Engine):
        """Waits for the start time in the prompt, then yields ``tokens`` timestamps."""

        kind = "stamp"

        async def generate(self, request: GenerationRequest):  # type: ignore[no-untyped-def]
            prompt = request.messages[-1].content if request.messages else ""
            start = float(prompt.split("start=")[1]) if "start=" in prompt else 0.0
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            for i in range(tokens):
                if i:
                    await asyncio.sleep(delay)
                yield Delta(f"{time.monotonic():.6f} ", 1, i + 1, "stop" if i == tokens - 1 else None)

    (workdir / "models.toml").write_text(MODELS)
    settings = Settings(
        port=port,
        models=workdir / "models.toml",
        db=workdir / "arena.db",
        battle_rate="1000000/1",
        vote_rate="1000000/1",
        max_queue=1000,
        parallel=1000,
    )
    app = create_app(settings)

    def stamp_engines(app) -> None:  # type: ignore[no-untyped-def]
        for entry in app.state.models.all():
            entry.engine = StampEngine()

    app.on_startup.append(stamp_engines)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the anchor: a trivial raw-asyncio SSE server with the same schedule ---------------------------


def serve_anchor(port: int, tokens: int, delay: float) -> None:
    starts: dict[str, float] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # the start-up probe
            writer.close()
            return
        path = head.split(b" ")[1].decode()
        if path.startswith("/start/"):  # /start/<id>/<time>: register a battle
            _, _, battle, start = path.split("/")
            starts[battle] = float(start)
            writer.write(b"HTTP/1.0 201 Created\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        start = starts[path.split("/")[2]]
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n")
        await writer.drain()

        async def side(name: str) -> None:
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            for i in range(tokens):
                if i:
                    await asyncio.sleep(delay)
                writer.write(b"id: %d\nevent: %s\ndata: %.6f \n\n" % (i, name.encode(), time.monotonic()))

        await asyncio.gather(side("a"), side("b"))
        writer.write(b"event: done\ndata: done\n\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- the client -------------------------------------------------------------------------------------


@dataclass
class Result:
    delays: list[float] = field(default_factory=list)
    tokens: int = 0
    late_connects: int = 0
    start: float = 0.0
    last_stamp: float = 0.0  # when the last token was yielded: a saturated server yields late


async def request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = await reader.read()
    writer.close()
    return data


async def create_arena_battle(port: int, start: float) -> str:
    body = b'{"prompt": "start=%.6f"}' % start
    raw = (
        b"POST /api/v1/battles HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    reply = await request(port, raw)
    assert reply.startswith(b"HTTP/1.1 201") or reply.startswith(b"HTTP/1.0 201"), reply[:200]
    return reply.split(b'"id":"')[1].split(b'"')[0].decode()


async def follow(port: int, path: str, start: float, result: Result, json_events: bool) -> None:
    """Read one SSE stream to its ``done`` (HTTP/1.0: no chunk framing, the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    if time.monotonic() > start:
        result.late_connects += 1
    buffer = b""
    while True:
        chunk = await reader.read(65536)
        now = time.monotonic()
        if not chunk:
            break
        buffer += chunk
        *events, buffer = buffer.split(b"\n\n")
        for event in events:
            name, data = b"", b""
            for line in event.split(b"\n"):
                if line.startswith(b"event: "):
                    name = line[7:]
                elif line.startswith(b"data: "):
                    data = line[6:]
            if name in (b"a", b"b"):
                stamp = float(data.split(b'"text":"')[1].split(b" ")[0]) if json_events else float(data)
                result.delays.append(now - stamp)
                result.tokens += 1
                result.last_stamp = max(result.last_stamp, stamp)
    writer.close()


async def run_arena(port: int, battles: int, json_events: bool, margin: float) -> Result:
    result = Result()
    start = result.start = time.monotonic() + margin
    ids = await asyncio.gather(*[create_arena_battle(port, start) for _ in range(battles)])
    prefix = "/api/v1/battles" if json_events else "/battle"
    await asyncio.gather(*[follow(port, f"{prefix}/{i}/events", start, result, json_events) for i in ids])
    return result


async def run_anchor(port: int, battles: int, margin: float) -> Result:
    result = Result()
    start = result.start = time.monotonic() + margin
    for i in range(battles):
        await request(port, f"GET /start/b{i}/{start:.6f} HTTP/1.0\r\n\r\n".encode())
    await asyncio.gather(*[follow(port, f"/stream/b{i}", start, result, False) for i in range(battles)])
    return result


def wait_port(port: int, proc: subprocess.Popen[bytes], ready_path: str | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited early")
        try:
            if ready_path is None:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            reply = asyncio.run(request(port, f"GET {ready_path} HTTP/1.0\r\n\r\n".encode()))
            if b" 200 " in reply.split(b"\r\n", 1)[0]:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per side")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between an engine's tokens")
    parser.add_argument("--stream", choices=["html", "json"], default="html")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port = args.serve[0], int(args.serve[1])
        if kind == "anchor":
            serve_anchor(port, args.tokens, args.delay)
        else:
            serve_arena(port, Path(tempfile.mkdtemp(prefix="bench-sse-")), args.tokens, args.delay)
        return

    json_events = args.stream == "json"
    margin = 2.0 + 0.02 * args.battles  # time to create the battles and connect, before tokens flow
    common = ["--tokens", str(args.tokens), "--delay", str(args.delay)]
    rows: list[tuple[str, Result, int]] = []

    def with_server(kind: str, ready: str | None, run) -> Result:  # type: ignore[no-untyped-def]
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
        proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port), *common], env=env, cwd=ROOT)
        try:
            wait_port(port, proc, ready)
            return asyncio.run(run(port))
        finally:
            proc.terminate()
            proc.wait(30)

    for battles in (args.battles, 1):
        name = f"arena, {battles} battle{'s' if battles > 1 else ''} ({args.stream} stream)"
        print(f"{name}...", flush=True)
        result = with_server("arena", "/ready", lambda port, n=battles: run_arena(port, n, json_events, margin))
        rows.append((name, result, battles))
    name = f"anchor: raw asyncio SSE, {args.battles} streams"
    print(f"{name}...", flush=True)
    rows.append((name, with_server("anchor", None, lambda port: run_anchor(port, args.battles, margin)), args.battles))

    print()
    print(
        f"token delay (engine yield -> client read), {args.tokens} tokens per side every {args.delay * 1000:.0f} ms,"
        f" both sides streaming; {os.cpu_count()} CPUs shared by server and client"
    )
    ideal = (args.tokens - 1) * args.delay
    print(f"{'':<40} {'tokens':>8} {'of':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'gen s':>6}")
    for name, r, battles in rows:
        expected = battles * 2 * args.tokens
        print(
            f"{name:<40} {r.tokens:>8} {expected:>8} {pct(r.delays, 0.5):>8.2f} {pct(r.delays, 0.9):>8.2f}"
            f" {pct(r.delays, 0.99):>8.2f} {max(r.delays, default=0) * 1000:>8.2f} {r.last_stamp - r.start:>6.2f}"
            + (f"  ({r.late_connects} connected late)" if r.late_connects else "")
        )
    print(
        f"gen s: first to last token yielded (the schedule alone takes {ideal:.2f} s; more means the"
        " server could not keep the engines' pace)"
    )
    print("target: p99 <= 50 ms for 100 battles")


if __name__ == "__main__":
    main()
