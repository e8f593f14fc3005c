"""SIGKILL the real server under vote traffic and check what the database kept.

Shared by ``tests/reliability`` (a few kills) and ``bench/reliability.py`` (more): each round
starts ``arena serve`` on the same database, runs voting clients, kills the server with SIGKILL
at a random moment and records every vote that was acknowledged with a 2xx.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers.server import ArenaServer, scripted_models_toml

# No limit gets in the way of the traffic (every rate flag the server has is raised).
OPEN_RATES = tuple(
    arg
    for flag in ("--battle-rate", "--vote-rate", "--generation-rate", "--model-rate", "--feedback-rate", "--stop-rate")
    for arg in (flag, "1000000/1")
) + ("--max-streams-per-client", "1000000", "--max-connections-per-client", "1000000")
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


@dataclass
class KillReport:
    kills: int = 0
    acknowledged: set[str] = field(default_factory=set)  # battle ids whose vote got a 2xx
    stored: int = 0  # vote rows in the database at the end
    distinct: int = 0  # distinct battle ids among them
    integrity: str = ""
    refused: int = 0  # votes answered with a 4xx (none expected)
    lost: set[str] = field(default_factory=set)  # acknowledged but not stored (must stay empty)
    refusals: list[str] = field(default_factory=list)  # status and body of each refused vote


def models_file(tmp: Path, replies: dict[str, list[str]] | None = None) -> Path:
    path = tmp / "models.toml"
    path.write_text(scripted_models_toml(replies or {"alpha": ["Alpha answers."], "beta": ["Beta answers too."]}))
    return path


async def _voter(base: str, report: KillReport, rng: random.Random) -> None:
    """Start a battle, wait for its answers, vote; forever (until the server dies)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while True:
            r = await client.post("/api/v1/battles", json={"prompt": f"Q{rng.random()}", "wait": True})
            if r.status_code != 201:
                await asyncio.sleep(0.01)
                continue
            battle_id = r.json()["id"]
            v = await client.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": rng.choice(WINNERS)})
            if v.is_success:
                report.acknowledged.add(battle_id)
            elif v.status_code < 500:
                report.refused += 1
                report.refusals.append(f"{v.status_code} {v.text[:200]}")


async def _round(base: str, report: KillReport, clients: int, seconds: float, rng: random.Random) -> None:
    tasks = [asyncio.create_task(_voter(base, report, rng)) for _ in range(clients)]
    await asyncio.sleep(seconds)
    # the caller kills the server now; the clients' requests in flight fail and they are cancelled
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def warm_up(base: str, report: KillReport) -> None:
    """One battle and vote before the clock starts (a new process's first vote is slow)."""
    r = httpx.post(f"{base}/api/v1/battles", json={"prompt": "Warm up", "wait": True}, timeout=60)
    battle_id = r.json()["id"]
    v = httpx.post(f"{base}/api/v1/battles/{battle_id}/vote", json={"winner": "tie"}, timeout=60)
    v.raise_for_status()
    report.acknowledged.add(battle_id)


def kill_under_votes(tmp: Path, kills: int, *, clients: int = 4, seed: int = 0) -> KillReport:
    """``kills`` rounds of traffic, each ended by SIGKILL at a random moment, then a final check."""
    rng = random.Random(seed)
    report = KillReport()
    models = models_file(tmp)
    for _ in range(kills):
        server = ArenaServer(tmp, "--models", str(models), *OPEN_RATES)
        warm_up(server.base, report)
        seconds = rng.uniform(0.2, 2.0)

        async def traffic(server: ArenaServer = server, seconds: float = seconds) -> None:
            killer = asyncio.get_running_loop().call_later(seconds, server.proc.kill)
            try:
                await _round(server.base, report, clients, seconds + 0.05, rng)
            finally:
                killer.cancel()

        asyncio.run(traffic())
        server.proc.kill()
        server.proc.wait(10)
        report.kills += 1
    check(tmp / "arena.db", report)
    return report


def check(db: Path, report: KillReport) -> None:
    """Start once more (the restart must work on what the kills left) and read the votes."""
    server = ArenaServer(db.parent, "--models", str(models_file(db.parent)))
    server.stop()
    conn = sqlite3.connect(db)
    try:
        report.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        ids = [row[0] for row in conn.execute("SELECT battle_id FROM votes")]
    finally:
        conn.close()
    report.stored, report.distinct = len(ids), len(set(ids))
    report.lost = report.acknowledged - set(ids)
