"""Votes per second through the JSON API of the real server, and whether any vote is lost.

    python bench/votes.py [--seconds 20] [--clients 32] [--battles 120000]

The server (`arena serve`, scripted engines) gets battles completed beforehand: a few hundred
through the API (`wait: true`), the rest written straight into its database with the store's own
write functions before it starts. Then CLIENTS keep-alive connections post one vote per battle to
/api/v1/battles/{id}/vote for SECONDS. Afterwards the votes in the database are counted and
compared with the acknowledged (200) answers.

Anchor, measured in the same run with the same client and battle ids: what FastChat does with a
vote, a minimal asyncio HTTP server that appends each vote as a JSON line to a log file. It shows
the ceiling of this machine and client, and the price of the arena's checks and transaction.

The client is a small raw HTTP/1.1 client (no httpx), so that on a 2-core machine it takes as
little CPU from the server as possible. No assertions on time: this prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.server import ArenaServer, free_port  # noqa: E402

MODELS = """
[[models]]
id = "alpha"
name = "Alpha"
engine = "scripted"
script = ["Alpha answers with **some** markdown.\\n\\n- one\\n- two"]

[[models]]
id = "beta"
name = "Beta"
engine = "scripted"
script = ["Beta answers plainly."]
"""
WINNERS = ["model_a", "model_b", "tie", "tie (bothbad)"]


def prepare_battles(db: Path, count: int) -> list[str]:
    """Complete battles written with the store's write functions, as the arena would."""
    from app.arena.visitors import voter_hash
    from app.rating.style import style_features
    from app.store import battles as q
    from app.store import migrations

    migrations.apply(str(db))
    # The battles belong to the visitor who votes on them (the bench client on 127.0.0.1): another
    # visitor's vote is a 404.
    voter = voter_hash(migrations.stored_secret(str(db)), "127.0.0.1")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.row_factory = sqlite3.Row
    answers = {
        "a": "Alpha answers with **some** markdown.\n\n- one\n- two",
        "b": "Beta answers plainly.",
    }
    ids = [f"bench{i:07d}" for i in range(count)]
    conn.execute("BEGIN")
    for i, battle_id in enumerate(ids):
        a, b = ("alpha", "beta") if i % 2 else ("beta", "alpha")
        q.create_battle(q.NewBattle(battle_id, "anony", a, b, 1.0, voter, "Hello?"))(conn)
        q.add_prompt(battle_id, 1, "Hello?")(conn)
        for side, text in answers.items():
            tokens = len(text.split())
            style = style_features(text, tokens).as_tuple()
            q.add_answer(q.Answer(battle_id, side, 1, text, 3, tokens, 0.01, 0.05, "stop", style=style))(conn)
    conn.execute("COMMIT")
    conn.close()
    return ids


def api_battles(base: str, count: int) -> list[str]:
    import httpx

    with httpx.Client(base_url=base, timeout=60) as http:
        return [
            http.post("/api/v1/battles", json={"prompt": "Hello?", "wait": True}).json()["id"] for _ in range(count)
        ]


# -- the load -------------------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.status: dict[int, int] = {}
        self.elapsed = 0.0
        self.ran_out = False


async def worker(port: int, ids: Iterator[str], deadline: float, stats: Stats, index: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        n = 0
        while time.perf_counter() < deadline:
            battle_id = next(ids, None)
            if battle_id is None:
                stats.ran_out = True
                break
            body = json.dumps({"winner": WINNERS[(index + n) % 4]}).encode()
            n += 1
            request = (
                f"POST /api/v1/battles/{battle_id}/vote HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            stats.latencies.append(time.perf_counter() - started)
            stats.status[status] = stats.status.get(status, 0) + 1
    finally:
        writer.close()


async def load(port: int, ids: Iterable[str], clients: int, seconds: float) -> Stats:
    """CLIENTS connections vote, one battle each time, until SECONDS pass or the ids run out."""
    stats = Stats()
    pool = iter(ids)
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*[worker(port, pool, deadline, stats, i) for i in range(clients)])
    stats.elapsed = time.perf_counter() - started
    if stats.ran_out:
        print(f"  (ran out of battles after {stats.elapsed:.1f} s; use --battles)", flush=True)
    return stats


# -- the anchor: FastChat's way, a JSON line per vote appended to a log file ----------------------


def anchor_serve(port: int, log_path: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line = head.split(b"\r\n", 1)[0].decode()
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = json.loads(await reader.readexactly(length)) if length else {}
                battle_id = request_line.split(" ")[1].split("/")[4]
                with open(log_path, "a") as log:  # as FastChat's vote_last_response does
                    log.write(
                        json.dumps({"tstamp": time.time(), "type": body.get("winner"), "battle": battle_id}) + "\n"
                    )
                reply = json.dumps({"model_a": "alpha", "model_b": "beta"}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(reply)
                    + reply
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- report -----------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def row(name: str, stats: Stats, stored: int) -> str:
    acked = stats.status.get(200, 0)
    other = sum(v for k, v in stats.status.items() if k not in (200, 409))
    return (
        f"{name:<34} {acked / stats.elapsed:>9,.0f} {pct(stats.latencies, 0.5):>8.1f} {pct(stats.latencies, 0.99):>8.1f}"
        f" {acked:>8} {stored:>8} {stats.status.get(409, 0):>6} {other:>6} {'yes' if stored == acked else 'NO':>5}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--battles", type=int, default=120_000, help="battles prepared (each is voted once)")
    parser.add_argument("--api-battles", type=int, default=200, help="of which made through the API first")
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--anchor-serve", nargs=2, metavar=("PORT", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.anchor_serve:
        anchor_serve(int(args.anchor_serve[0]), args.anchor_serve[1])
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-votes-"))
    models = tmp / "models.toml"
    models.write_text(MODELS)
    db = tmp / "arena.db"
    t0 = time.perf_counter()
    ids = prepare_battles(db, args.battles - args.api_battles)
    print(f"prepared {len(ids)} battles in the store in {time.perf_counter() - t0:.1f} s", flush=True)

    server = ArenaServer(
        tmp,
        "--models",
        str(models),
        "--vote-rate",
        "1000000/1",
        "--battle-rate",
        "1000000/1",
        "--log-level",
        "warning",
    )
    try:
        ids = api_battles(server.base, args.api_battles) + ids
        print(
            f"made {args.api_battles} battles through the API; voting for {args.seconds:.0f} s"
            f" with {args.clients} clients...",
            flush=True,
        )
        ours = asyncio.run(load(server.port, ids, args.clients, args.seconds))
    finally:
        server.stop()
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
        counted = conn.execute(
            "SELECT COALESCE(SUM(wins_a + wins_b + ties + bothbad), 0) FROM pair_counts WHERE category = 'overall'"
        ).fetchone()[0]

    rows = [row("arena: /api/v1 vote -> SQLite", ours, stored)]
    if not args.skip_anchor:
        anchor_port, anchor_log = free_port(), tmp / "votes.jsonl"
        anchor = subprocess.Popen([sys.executable, __file__, "--anchor-serve", str(anchor_port), str(anchor_log)])
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", anchor_port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            print("anchor: the same load against a JSON-lines log server...", flush=True)
            theirs = asyncio.run(
                load(anchor_port, (f"anchor{i}" for i in itertools.count()), args.clients, args.seconds)
            )
        finally:
            anchor.terminate()
            anchor.wait(10)
        lines = len(anchor_log.read_text().splitlines()) if anchor_log.exists() else 0
        rows.append(row("anchor: asyncio HTTP -> JSON lines", theirs, lines))

    print()
    print(
        f"votes over HTTP, {args.clients} clients, {args.seconds:.0f} s, {os.cpu_count()} CPUs"
        " (server and clients share them)"
    )
    print(
        f"{'':<34} {'votes/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'acked':>8} {'stored':>8} {'409':>6} {'other':>6} {'same':>5}"
    )
    for line in rows:
        print(line)
    print(f"pair counts agree with the stored votes: {'yes' if counted == stored else f'NO ({counted} vs {stored})'}")
    print("target: >= 1,500 votes/s, p99 <= 100 ms, none lost")


if __name__ == "__main__":
    main()
