"""The reliability suite's long versions, printed as one table: what was tried, what happened.

    python bench/reliability.py [--kills 10] [--fuzz 350] [--schema 40] [--streams 200] [--seconds 60]
                                [--replays 20] [--slow 100] [--parts crash,faults,...]

- Crash safety: ``arena serve`` (scripted engines) under vote traffic, SIGKILLed KILLS times at
  random moments and restarted on the same database; votes acknowledged (2xx) against votes
  stored, duplicates, PRAGMA integrity_check.
- Engine faults: the fault-injecting wrapper (tests/helpers/faults.py) on one model: raise
  mid-stream, hang past the timeout, fail to load, run slowly; faults injected against faults
  survived (the model's battles marked failed, the model down and back after a probe, the other
  models served throughout).
- Bad input: the hypothesis fuzz tests of tests/reliability/test_bad_input.py with FUZZ cases
  each; cases run and how many got a 5xx.
- schemathesis: the real server's own OpenAPI schema (``/schema``) drives SCHEMA cases per
  operation of /v1, /api/v1 and the admin API and per mode (schema-valid, schema-breaking, and
  valid with real ids); cases run and how many got a 5xx.
- Disconnects: STREAMS clients open battle and /v1 streams on the real server (slow scripted
  engines) and drop them; streams still generating afterwards, and the server's RSS against its
  baseline (the anchor, measured in the same run before the streams).
- Load: battles and /v1 together for SECONDS: answers by status, Retry-After on every 429/503,
  requests that hung (no answer within 60 s).
- Rate-limit oracle: after one anonymous battle, the /v1 calls (refused ones, then served ones)
  a model inside the battle and a model outside it take before a 429; the outside model is the
  anchor, and the difference would tell the voter which models they drew.
- Slow connections: SLOW clients send their headers a line every 0.5 s (and 20 a body a byte at
  a time) against --header-timeout/--body-timeout 2 s; connections still open when all were
  closed or 10 s had passed, against those opened (the anchor).
- Disk full: the database on a small tmpfs (or under the server's RLIMIT_FSIZE without root)
  that is then filled: status codes of a battle and a vote, and /ready, before (the anchor),
  while full and after freeing it; and a read-only database at start-up.
- Replay: a battle prompt on the real Gemma presets, then REPLAYS replays of it on /v1 to each
  side's model, at temperature 0 and with the model's defaults: byte-identical matches with the
  side's answer (each one tells the voter the side's model); anchor: the temperature-0 replays
  against their own first answer.

No assertions on time: the table is the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.registry.spec import default_models_text  # noqa: E402
from app.store import migrations  # noqa: E402
from tests.helpers import schema_fuzz  # noqa: E402
from tests.helpers.crash import OPEN_RATES, kill_under_votes, models_file  # noqa: E402
from tests.helpers.disk import kinds, small_disk  # noqa: E402
from tests.helpers.server import ROOT as SERVER_ROOT  # noqa: E402
from tests.helpers.server import ArenaServer, free_port  # noqa: E402
from tests.helpers.slow import slow_clients  # noqa: E402

ADMIN = "bench-admin-token"
LONG = " ".join(f"w{i}" for i in range(40))
Row = tuple[str, str, str]


def crash(kills: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        r = kill_under_votes(Path(tmp), kills, clients=4, seed=1)
    return [
        (
            f"SIGKILL under vote traffic x{r.kills}",
            "votes acknowledged / stored",
            f"{len(r.acknowledged)} / {r.stored}",
        ),
        ("", "acknowledged votes lost", str(len(r.lost))),
        ("", "duplicate votes", str(r.stored - r.distinct)),
        ("", "integrity_check", r.integrity),
    ]


def pytest_run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    return proc.returncode, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]


def faults() -> list[Row]:
    kinds = {"raise-mid-stream": "raise", "hang-past-timeout": "hang", "load": "load", "slow": "slow"}
    rows: list[Row] = []
    injected = survived = 0
    for name, key in kinds.items():
        code, summary = pytest_run(["tests/reliability/test_engine_faults.py", "-k", key], {})
        injected += 1
        survived += code == 0
        rows.append(("", f"{name}", "survived" if code == 0 else f"FAILED: {summary}"))
    return [("engine faults (one model of three)", "faults injected / survived", f"{injected} / {survived}"), *rows]


def fuzz(cases: int) -> list[Row]:
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        code, summary = pytest_run(
            ["tests/reliability/test_bad_input.py"],
            {"ARENA_FUZZ_EXAMPLES": str(cases), "ARENA_FUZZ_REPORT": report.name},
        )
        statuses = Counter(int(line) // 100 for line in Path(report.name).read_text().split())
    total = sum(statuses.values())
    return [
        ("hypothesis fuzz (JSON APIs, forms, import)", "cases run", str(total)),
        ("", "2xx / 4xx / 5xx", f"{statuses[2]} / {statuses[4]} / {statuses[5]}"),
        ("hostile bodies, SQL injection, traversal", "pytest", summary if code == 0 else f"FAILED: {summary}"),
    ]


def schemathesis_cases(examples: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        models = models_file(Path(tmp), {"alpha": ["Hi."], "beta": ["Yo."], "gamma": ["Hm."]})
        server = ArenaServer(Path(tmp), "--models", str(models), "--admin-token", ADMIN, *OPEN_RATES)
        try:
            battle = httpx.post(f"{server.base}/api/v1/battles", json={"prompt": "Hi", "wait": True}, timeout=30)
            known = {"battle_id": battle.json()["id"], "model_id": "gamma"}
            result = schema_fuzz.run(server.base, examples, {"authorization": f"Bearer {ADMIN}"}, known)
        finally:
            server.stop()
    return [
        (
            f"schemathesis on /schema ({len(result.operations)} operations)",
            "cases run",
            str(result.cases),
        ),
        ("", "2xx / 4xx / 5xx", f"{result.count(2)} / {result.count(4)} / {result.count(5)}"),
        *(("", "5xx", error) for error in result.server_errors[:5]),
    ]


def _running(base: str) -> int:
    models = httpx.get(f"{base}/api/v1/admin/models", headers={"authorization": f"Bearer {ADMIN}"}).json()
    return sum(int(m["running"]) for m in models["models"])


async def _open_and_drop(base: str, n: int) -> Counter[str]:
    """n clients: half start a battle and read its SSE stream, half stream /v1; each drops after
    the first bytes."""
    seen: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def battle() -> None:
            r = await client.post("/api/v1/battles", json={"prompt": "Hi"})
            if r.status_code != 201:
                seen[f"battle {r.status_code}"] += 1
                return
            async with client.stream("GET", f"/api/v1/battles/{r.json()['id']}/events") as s:
                async for _ in s.aiter_bytes():
                    break
            seen["battle dropped"] += 1

        async def openai() -> None:
            body = {"model": "alpha", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
            async with client.stream("POST", "/v1/chat/completions", json=body) as s:
                if s.status_code != 200:
                    seen[f"v1 {s.status_code}"] += 1
                    return
                async for _ in s.aiter_bytes():
                    break
            seen["v1 dropped"] += 1

        await asyncio.gather(*(battle() if i % 2 else openai() for i in range(n)))
    return seen


def disconnects(streams: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        plan = json.dumps({m: {"kind": "slow", "delay": 0.05} for m in ("alpha", "beta")})
        models = models_file(Path(tmp), {"alpha": [LONG], "beta": [LONG]})
        flags = ("--models", str(models), "--admin-token", ADMIN, "--max-queue", "1000", "--parallel", "1000")
        server = ArenaServer(Path(tmp), *flags, *OPEN_RATES, launcher=("-m", "tests.helpers.faults", plan))
        try:
            proc = psutil.Process(server.proc.pid)
            asyncio.run(_open_and_drop(server.base, 20))  # warm up: first requests allocate caches
            time.sleep(3)
            baseline = proc.memory_info().rss
            seen = asyncio.run(_open_and_drop(server.base, streams))
            deadline = time.monotonic() + 30  # battles finish on their own (~2 s); /v1 stops at once
            while _running(server.base) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)
            after = proc.memory_info().rss
            running = _running(server.base)
        finally:
            server.stop()
    growth = (after - baseline) / baseline * 100
    return [
        (
            f"{streams} clients open streams and drop them",
            "dropped (battle / v1)",
            f"{seen['battle dropped']} / {seen['v1 dropped']}",
        ),
        ("", "refused", str(sum(v for k, v in seen.items() if "dropped" not in k))),
        ("", "generations still running", str(running)),
        ("", "RSS baseline -> after (anchor)", f"{baseline / 2**20:.1f} -> {after / 2**20:.1f} MiB ({growth:+.1f}%)"),
    ]


async def _mixed(base: str, seconds: float) -> tuple[Counter[str], int, int]:
    statuses: Counter[str] = Counter()
    missing_retry = hung = 0
    stop = time.monotonic() + seconds
    rng = random.Random(3)

    async def one(client: httpx.AsyncClient, kind: str) -> None:
        nonlocal missing_retry, hung
        try:
            if kind == "battle":
                r = await client.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
            else:
                body = {"model": rng.choice(["alpha", "beta"]), "messages": [{"role": "user", "content": "Hi"}]}
                r = await client.post("/v1/chat/completions", json=body)
        except httpx.TimeoutException:
            hung += 1
            return
        statuses[f"{kind} {r.status_code}"] += 1
        if r.status_code in (429, 503) and "retry-after" not in r.headers:
            missing_retry += 1

    async def worker(kind: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            while time.monotonic() < stop:
                await one(client, kind)

    await asyncio.gather(*(worker("battle" if i % 2 else "v1") for i in range(16)))
    return statuses, missing_retry, hung


def load(seconds: float) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        plan = json.dumps({m: {"kind": "slow", "delay": 0.01} for m in ("alpha", "beta")})
        models = models_file(Path(tmp), {"alpha": [LONG], "beta": [LONG]})
        flags = ("--models", str(models), "--max-queue", "2", "--parallel", "2")
        server = ArenaServer(Path(tmp), *flags, *OPEN_RATES, launcher=("-m", "tests.helpers.faults", plan))
        try:
            statuses, missing_retry, hung = asyncio.run(_mixed(server.base, seconds))
        finally:
            server.stop()
    served = {k: v for k, v in statuses.items() if k.endswith(("200", "201"))}
    return [
        (
            f"battles + /v1 together, {seconds:g} s",
            "answers by status",
            ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
        ),
        (
            "",
            "starved (a kind never served)",
            str(sum(1 for kind in ("battle", "v1") if not any(k.startswith(kind) for k in served))),
        ),
        ("", "429/503 without Retry-After", str(missing_retry)),
        ("", "hung (no answer in 60 s)", str(hung)),
    ]


def _before_429(client: httpx.Client, model: str, content: str, tries: int = 40) -> int | None:
    """/v1 calls to ``model`` before a 429 (None: none in ``tries``)."""
    for n in range(tries):
        r = client.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]}
        )
        if r.status_code == 429:
            return n
    return None


def oracle() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        models = models_file(Path(tmp), {"alpha": ["Alpha."], "beta": ["Beta."], "gamma": ["Gamma."]})
        flags = ("--models", str(models), "--model-rate", "10/60", "--generation-rate", "1000/60")
        server = ArenaServer(Path(tmp), *flags)
        try:
            with httpx.Client(base_url=server.base, timeout=30) as client:
                battle = client.post("/api/v1/battles", json={"prompt": "Hi", "wait": True}).json()["id"]
                client.post(f"/api/v1/battles/{battle}/vote", json={"winner": "tie"})  # reveals the pair
                drawn = client.get(f"/api/v1/battles/{battle}").json()["models"]
                inside = drawn["a"]
                outside = next(m for m in ("alpha", "beta", "gamma") if m not in drawn.values())
                overflow = " ".join(["word"] * 100)  # over the 64-token context: refused after admission
                refused = {m: _before_429(client, m, overflow) for m in (inside, outside)}
                served = {m: _before_429(client, m, "Hi") for m in (inside, outside)}
        finally:
            server.stop()

    def shown(counts: dict[str, int | None]) -> str:
        a, b = counts[inside], counts[outside]
        diff = "0" if a == b else "n/a" if a is None or b is None else str(b - a)
        return f"{'none in 40' if a is None else a} / {'none in 40' if b is None else b} (difference {diff})"

    return [
        ("rate-limit oracle, --model-rate 10/60", "refused calls before a 429: inside / outside", shown(refused)),
        ("(one anonymous battle first)", "served calls before a 429: inside / outside", shown(served)),
    ]


def slow_connections(count: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        models = models_file(Path(tmp))
        flags = ("--models", str(models), "--header-timeout", "2", "--body-timeout", "2")
        server = ArenaServer(Path(tmp), *flags)
        try:
            heads = slow_clients(server.port, count, wait=10)
            bodies = slow_clients(server.port, 20, wait=10, body=True)
            health = httpx.get(server.base + "/health").status_code
        finally:
            server.stop()
    answers = Counter(heads.statuses())
    return [
        (
            f"{count} slow-header clients, --header-timeout 2",
            "still open after up to 10 s / opened",
            f"{heads.still_open} / {heads.opened}",
        ),
        ("", "answers", ", ".join(f"{k} x{v}" for k, v in answers.items()) or "none"),
        (
            "20 slow-body clients, --body-timeout 2",
            "still open after up to 10 s / opened",
            f"{bodies.still_open} / {bodies.opened}",
        ),
        ("", "/health meanwhile", str(health)),
    ]


def disk_full() -> list[Row]:
    kind = kinds()[0]
    with tempfile.TemporaryDirectory() as tmp, small_disk(kind) as disk:
        server = ArenaServer(Path(tmp), "--models", str(models_file(Path(tmp))), "--db", str(disk.db))
        disk.pid = server.proc.pid
        try:
            with httpx.Client(base_url=server.base, timeout=30) as client:

                def round_trip(prompt: str) -> str:
                    battle = client.post("/api/v1/battles", json={"prompt": prompt, "wait": True})
                    vote = "-"
                    if battle.status_code == 201:
                        vote = str(
                            client.post(
                                f"/api/v1/battles/{battle.json()['id']}/vote", json={"winner": "tie"}
                            ).status_code
                        )
                    return f"{battle.status_code} / {vote} / {client.get('/ready').status_code}"

                before = round_trip("Hi")
                disk.fill()
                full = Counter(
                    client.post("/api/v1/battles", json={"prompt": f"{i} " + "x" * 7000, "wait": True}).status_code
                    for i in range(10)
                )
                ready_full = client.get("/ready").status_code
                health_full = client.get("/health").status_code
                disk.free()
                after = round_trip("Back?")
        finally:
            server.stop()
        start_up = _read_only_start(Path(tmp), kind)
    return [
        (f"disk full ({kind})", "battle / vote / ready before (anchor)", before),
        ("", "10 battles while full, by status", ", ".join(f"{k} x{v}" for k, v in sorted(full.items()))),
        ("", "/ready / /health while full", f"{ready_full} / {health_full}"),
        ("", "battle / vote / ready after freeing", after),
        ("read-only database at start-up", "exit code, lines of output", start_up),
    ]


def _read_only_start(tmp: Path, kind: str) -> str:
    with small_disk(kind) as disk:
        migrations.apply(str(disk.db))
        disk.read_only()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")} | {"ARENA_DEMO_MODEL": ""}
        cmd = [sys.executable, "-m", "app", "serve", "--port", str(free_port()), "--models", str(models_file(tmp))]
        done = subprocess.run(
            [*cmd, "--db", str(disk.db)], cwd=SERVER_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
    lines = (done.stdout + done.stderr).strip().splitlines()
    return f"{done.returncode}, {len(lines)} line{'s' if len(lines) != 1 else ''}"


REPLAY_PROMPT = "Name three colours."


def _chat(client: httpx.Client, model: str, **sampling: float) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": REPLAY_PROMPT}], **sampling}
    r = client.post("/v1/chat/completions", json=body)
    return str(r.json()["choices"][0]["message"]["content"]) if r.status_code == 200 else f"<{r.status_code}>"


def replay(replays: int) -> list[Row]:
    """The embedded Gemma presets with answers cut to 48 tokens (so that the replays are quick)."""
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models.toml"
        models.write_text(re.sub(r"max_tokens\s*=\s*\d+", "max_tokens = 48", default_models_text()))
        server = ArenaServer(Path(tmp), "--models", str(models))
        try:
            with httpx.Client(base_url=server.base, timeout=300) as client:
                battle = client.post("/api/v1/battles", json={"prompt": REPLAY_PROMPT, "wait": True}).json()
                answers = {side: battle["turns"][0][side]["text"] for side in ("a", "b")}
                client.post(f"/api/v1/battles/{battle['id']}/vote", json={"winner": "tie"})
                drawn = client.get(f"/api/v1/battles/{battle['id']}").json()["models"]
                rows: list[Row] = []
                anchor: list[str] = []
                for side in ("a", "b"):
                    greedy = [_chat(client, drawn[side], temperature=0) for _ in range(replays)]
                    defaults = [_chat(client, drawn[side]) for _ in range(replays)]
                    anchor = anchor or greedy
                    same = (sum(t == answers[side] for t in greedy), sum(t == answers[side] for t in defaults))
                    rows.append(
                        (
                            f"side {side.upper()} ({drawn[side]})"
                            if rows
                            else f"replay a battle prompt on /v1, side A ({drawn[side]})",
                            f"matches of {replays} replays: temperature 0 / defaults",
                            f"{same[0]} / {same[1]}",
                        )
                    )
        finally:
            server.stop()
    rows.append(
        ("", f"anchor: t=0 replays equal to their first (of {replays})", str(sum(t == anchor[0] for t in anchor)))
    )
    return rows


def table(rows: list[Row]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    head = ("what was tried", "measure", "what happened")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


PARTS = ("crash", "faults", "fuzz", "schema", "disconnects", "load", "oracle", "slow", "disk", "replay")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--fuzz", type=int, default=350, help="hypothesis cases per fuzz test (3 tests)")
    parser.add_argument("--schema", type=int, default=40, help="schemathesis cases per operation and mode")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--replays", type=int, default=20, help="replays of a battle prompt per side and mode")
    parser.add_argument("--slow", type=int, default=100, help="slow-header clients")
    parser.add_argument("--parts", default="", help=f"comma-separated parts to run (default all): {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    parts = {
        "crash": lambda: crash(args.kills),
        "faults": faults,
        "fuzz": lambda: fuzz(args.fuzz),
        "schema": lambda: schemathesis_cases(args.schema),
        "disconnects": lambda: disconnects(args.streams),
        "load": lambda: load(args.seconds),
        "oracle": oracle,
        "slow": lambda: slow_connections(args.slow),
        "disk": disk_full,
        "replay": lambda: replay(args.replays),
    }
    chosen = [p.strip() for p in args.parts.split(",") if p.strip()] or list(parts)
    unknown = [p for p in chosen if p not in parts]
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}; the parts are {', '.join(parts)}")
    rows: list[Row] = []
    for name in chosen:
        started = time.perf_counter()
        rows += parts[name]()
        print(f"  ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
