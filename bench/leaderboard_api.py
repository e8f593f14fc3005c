"""Does the leaderboard stall the server? A live battle's token gaps while ten bootstrap
leaderboard requests run, and `GET /api/v1/leaderboard` latency.

    python bench/leaderboard_api.py [--models 150] [--votes 300000] [--pace 0.01]
                                    [--baseline-tree /tmp/arena-old]

Builds a database with N synthetic anonymous votes over M models (the votes and the pair counts
a vote updates), starts `arena serve` on it with scripted engines that stream one word every
`--pace` seconds, opens a battle's SSE stream and, while it streams, sends ten concurrent
`GET /api/v1/leaderboard?ci=bootstrap&rounds=...` requests (ten different queries, so ten
fits). It reports the p50/p99/max gap between stream chunks during those requests (the floor
is the pace itself: the anchor, measured in the same run with no leaderboard requests) and the
requests' latency.

With `--baseline-tree DIR` (a git worktree of an older commit, e.g. `git worktree add
/tmp/arena-old c08ebd4`) the same measurement runs against that tree's server too, in the
same run: "before" vs "after".
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.store import migrations  # noqa: E402
from app.store.migrations import STYLE_COLUMNS  # noqa: E402
from tests.helpers.server import ArenaServer, scripted_models_toml  # noqa: E402

LAUNCHER = """
import sys; sys.path.insert(0, {tree!r})
import app.engines.scripted as s
init = s.ScriptedEngine.__init__
def paced(self, *a, **k):
    init(self, *a, **k)
    self.delay = {pace!r}
s.ScriptedEngine.__init__ = paced
from app.cli import main
sys.exit(main())
"""


def build_db(path: Path, n_votes: int, n_models: int, seed: int) -> None:
    migrations.apply(str(path))
    rng = np.random.default_rng(seed)
    names = [f"model-{k:03d}" for k in range(n_models)]
    true = rng.normal(1000, 100, n_models)
    ia = rng.integers(0, n_models, n_votes)
    ib = (ia + rng.integers(1, n_models, n_votes)) % n_models
    p = 1 / (1 + 10 ** ((true[ib] - true[ia]) / 400))
    code = np.where(rng.random(n_votes) < 0.15, 2, np.where(rng.random(n_votes) < p, 0, 1))
    winners = np.array(["model_a", "model_b", "tie"])[code]
    feats = rng.integers(0, 400, (n_votes, 8))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    cols = ", ".join(f"{s}_{c}" for s in "ab" for c in STYLE_COLUMNS)
    now = time.time()
    conn.executemany(
        f"INSERT INTO votes (battle_id, mode, model_a, model_b, winner, turns, created, voter_hash, categories,"
        f" pair_prob, {cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (f"b{i}", "anony", names[ia[i]], names[ib[i]], winners[i], 1, now, "", "overall", 1.0, *map(int, feats[i]))
            for i in range(n_votes)
        ),
    )
    lo, hi = np.minimum(ia, ib), np.maximum(ia, ib)
    a_won = np.where(ia == lo, code == 0, code == 1)
    b_won = np.where(ia == lo, code == 1, code == 0)
    key = lo * n_models + hi
    pairs = np.unique(key)
    size = n_models * n_models
    columns = [np.bincount(key, x, size)[pairs] for x in (a_won, b_won, code == 2)]
    conn.executemany(
        "INSERT INTO pair_counts (mode, category, model_a, model_b, wins_a, wins_b, ties, bothbad)"
        " VALUES ('anony', 'overall', ?, ?, ?, ?, ?, 0)",
        [
            (names[k // n_models], names[k % n_models], int(x), int(y), int(z))
            for k, x, y, z in zip(pairs, *columns, strict=True)
        ],
    )
    conn.commit()
    conn.close()


async def measure(base: str, boards: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(gaps without leaderboard requests, gaps during them, request latencies)."""
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:

        async def stream_gaps(during: bool) -> tuple[np.ndarray, list[float]]:
            battle = (await client.post("/api/v1/battles", json={"prompt": "Tell me a story", "wait": False})).json()
            arrivals: list[float] = []
            latencies: list[float] = []
            window: list[float] = []

            async def read() -> None:
                async with client.stream("GET", f"/api/v1/battles/{battle['id']}/events") as r:
                    async for _ in r.aiter_raw():
                        arrivals.append(time.perf_counter())

            async def one(k: int) -> None:
                t = time.perf_counter()
                await client.get("/api/v1/leaderboard", params={"ci": "bootstrap", "rounds": str(100 + k)})
                latencies.append(time.perf_counter() - t)

            async def load() -> None:
                await asyncio.sleep(0.5)
                window.append(time.perf_counter())
                if during:
                    await asyncio.gather(*(one(k) for k in range(boards)))
                else:
                    await asyncio.sleep(3.0)
                window.append(time.perf_counter())

            await asyncio.gather(read(), load())
            t = np.array([x for x in arrivals if window[0] <= x <= window[1]])
            return np.diff(t), latencies

        quiet, _ = await stream_gaps(False)
        busy, latencies = await stream_gaps(True)
    return quiet, busy, latencies


def run_server(tree: Path, tmp: Path, pace: float, boards: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    models = tmp / "models.toml"
    models.write_text(scripted_models_toml({"alpha": [" ".join(["word"] * 3000)], "beta": [" ".join(["w"] * 3000)]}))
    launcher = ("-c", LAUNCHER.format(tree=str(tree), pace=pace))
    server = ArenaServer(tmp, "--models", str(models), "--battle-rate", "1000/1", launcher=launcher)
    try:
        return asyncio.run(measure(server.base, boards))
    finally:
        server.stop()


def _ms(xs: np.ndarray, q: float) -> str:
    return f"{np.percentile(xs, q) * 1e3:9.1f}" if xs.size else f"{'-':>9}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=300_000)
    parser.add_argument("--models", type=int, default=150)
    parser.add_argument("--pace", type=float, default=0.01)
    parser.add_argument("--boards", type=int, default=10)
    parser.add_argument("--baseline-tree", type=Path, help="An older checkout to measure as 'before'.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    build_db(tmp / "arena.db", args.votes, args.models, 0)
    print(f"{args.votes:,} votes over {args.models} models stored in {time.perf_counter() - t0:.1f} s")
    trees = [("after", ROOT)] + ([("before", args.baseline_tree.resolve())] if args.baseline_tree else [])
    print(
        f"\n{'server':<8}{'stream':<28}{'gap p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'requests':>10}{'req p50 s':>10}"
    )
    for label, tree in trees:
        run = tmp / label
        run.mkdir()
        (run / "arena.db").write_bytes((tmp / "arena.db").read_bytes())
        quiet, busy, lat = run_server(tree, run, args.pace, args.boards)
        print(f"{label:<8}{'anchor: no leaderboard load':<28}{_ms(quiet, 50)}{_ms(quiet, 99)}{_ms(quiet, 100)}")
        print(
            f"{label:<8}{f'during {args.boards} bootstraps':<28}{_ms(busy, 50)}{_ms(busy, 99)}{_ms(busy, 100)}"
            f"{len(lat):>10}{np.median(lat):>10.2f}"
        )
    print("\ntarget: p99 gap during the bootstraps <= 50 ms")


if __name__ == "__main__":
    main()
