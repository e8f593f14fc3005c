"""`GET /api/v1/leaderboard` latency with a million votes stored.

    python bench/leaderboard_api.py [--votes 1000000] [--models 120] [--requests 40]

Builds a database with N synthetic anonymous votes (the votes table and the pair counts a vote
updates), starts `arena serve` on it (scripted engines, so it starts at once), then measures:
  - fresh: a vote is posted before each request, so every request recomputes the board from
    the stored counts (what a visitor sees right after voting);
  - cached: repeated requests with no vote in between;
  - anchor: `GET /health` on the same server in the same run (the HTTP floor).
Prints p50/p99 of each and the ratios to the anchor. Target: fresh p50 <= 50 ms.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
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


def build_db(path: Path, n_votes: int, n_models: int, seed: int) -> None:
    migrations.apply(str(path))
    rng = np.random.default_rng(seed)
    names = [f"model-{k:03d}" for k in range(n_models)]
    true = rng.normal(1000, 100, n_models)
    ia = rng.integers(0, n_models, n_votes)
    ib = (ia + rng.integers(1, n_models, n_votes)) % n_models
    p = 1 / (1 + 10 ** ((true[ib] - true[ia]) / 400))
    u = rng.random(n_votes)
    tie = rng.random(n_votes) < 0.15
    code = np.where(tie, 2, np.where(u < p, 0, 1))
    winners = np.array(["model_a", "model_b", "tie"])[code]
    feats = rng.integers(0, 400, (n_votes, 8))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    cols = ", ".join(f"{s}_{c}" for s in "ab" for c in STYLE_COLUMNS)
    now = time.time()
    rows = (
        (f"b{i}", "anony", names[ia[i]], names[ib[i]], winners[i], 1, now, "", "overall", 1.0, *map(int, feats[i]))
        for i in range(n_votes)
    )
    conn.executemany(
        f"INSERT INTO votes (battle_id, mode, model_a, model_b, winner, turns, created, voter_hash, categories,"
        f" pair_prob, {cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    lo, hi = np.minimum(ia, ib), np.maximum(ia, ib)
    a_won = np.where(ia == lo, code == 0, code == 1)
    b_won = np.where(ia == lo, code == 1, code == 0)
    key = lo * n_models + hi
    size = n_models * n_models
    pairs = np.unique(key)
    wins_a = np.bincount(key, a_won, size)[pairs]
    wins_b = np.bincount(key, b_won, size)[pairs]
    ties = np.bincount(key, code == 2, size)[pairs]
    conn.executemany(
        "INSERT INTO pair_counts (mode, category, model_a, model_b, wins_a, wins_b, ties, bothbad)"
        " VALUES ('anony', 'overall', ?, ?, ?, ?, ?, 0)",
        [
            (names[k // n_models], names[k % n_models], int(x), int(y), int(z))
            for k, x, y, z in zip(pairs, wins_a, wins_b, ties, strict=True)
        ],
    )
    conn.commit()
    conn.close()


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=120)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp())
    db = tmp / "arena.db"
    t0 = time.perf_counter()
    build_db(db, args.votes, args.models, 0)
    print(f"{args.votes:,} votes over {args.models} models stored in {time.perf_counter() - t0:.1f} s")
    models = tmp / "models.toml"
    models.write_text(scripted_models_toml({"alpha": ["A."], "beta": ["B."]}))
    server = ArenaServer(tmp, "--models", str(models), "--vote-rate", "1000000/1", "--battle-rate", "1000000/1")
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            battles = [
                client.post("/api/v1/battles", json={"prompt": "hi", "wait": True}).json()["id"]
                for _ in range(args.requests)
            ]
            client.get("/api/v1/leaderboard")  # warm-up
            fresh, cached, floor = [], [], []
            for battle_id in battles:
                client.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})
                t = time.perf_counter()
                board = client.get("/api/v1/leaderboard").json()
                fresh.append(time.perf_counter() - t)
                t = time.perf_counter()
                client.get("/api/v1/leaderboard")
                cached.append(time.perf_counter() - t)
                t = time.perf_counter()
                client.get("/health")
                floor.append(time.perf_counter() - t)
    finally:
        server.stop()
    print(f"last board: {len(board['models'])} models, {board['total_votes']:,} votes counted\n")
    print(f"{'request':<44}{'p50 ms':>10}{'p99 ms':>10}{'x anchor':>10}")
    anchor = statistics.median(floor)
    for label, xs in (
        ("GET /api/v1/leaderboard, fresh after a vote", fresh),
        ("GET /api/v1/leaderboard, cached", cached),
        ("anchor: GET /health", floor),
    ):
        print(
            f"{label:<44}{percentile(xs, 50) * 1e3:>10.1f}{percentile(xs, 99) * 1e3:>10.1f}"
            f"{statistics.median(xs) / anchor:>10.1f}"
        )
    print(f"\ntarget: fresh p50 <= 50 ms -> {'met' if percentile(fresh, 50) <= 0.05 else 'MISSED'}")


if __name__ == "__main__":
    main()
