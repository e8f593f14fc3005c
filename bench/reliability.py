"""The reliability suite's long versions, printed as one table: what was tried, what happened.

    python bench/reliability.py [--kills 10] [--fuzz 350] [--schema 40] [--streams 200] [--seconds 60]

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

No assertions on time: the table is the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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

from tests.helpers import schema_fuzz  # noqa: E402
from tests.helpers.crash import OPEN_RATES, kill_under_votes, models_file  # noqa: E402
from tests.helpers.server import ArenaServer  # noqa: E402

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


def table(rows: list[Row]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    head = ("what was tried", "measure", "what happened")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--fuzz", type=int, default=350, help="hypothesis cases per fuzz test (3 tests)")
    parser.add_argument("--schema", type=int, default=40, help="schemathesis cases per operation and mode")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for part in (
        lambda: crash(args.kills),
        faults,
        lambda: fuzz(args.fuzz),
        lambda: schemathesis_cases(args.schema),
        lambda: disconnects(args.streams),
        lambda: load(args.seconds),
    ):
        started = time.perf_counter()
        rows += part()
        print(f"  ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
