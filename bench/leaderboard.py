"""Leaderboard benchmark: ours vs arena-rank (LMArena's reference) on the same battles.

    python bench/leaderboard.py [--battles 1500000] [--models 120] [--seed 0]

Generates synthetic battles with a fixed seed: true ratings ~ N(1000, 100),
Zipf-like pair popularity (weight 1/rank over a random order of pairs), random
sides, 20% ties (half "tie", half "tie (bothbad)"), otherwise a Bradley-Terry
draw. Then measures, in one run:
  (a) ours: fit + sandwich intervals + Rank(UB) from the battle columns
      (aggregation included), and from already-aggregated pair counts;
  (b) ours: bootstrap with 100 rounds (from the aggregated cells);
  (c) arena-rank 0.1.1 on the same battles: PairDataset.from_pandas +
      BradleyTerry.compute_ratings_and_cis(ci_method="sandwich"), timed cold (JIT
      compile included) and warm; its bootstrap runs in a multiprocessing pool
      that can hang once JAX is loaded, so one bootstrap round
      (`fit_single_bootstrap_sample`) is timed a few times in sequence and
      multiplied by the number of rounds.
Prints a table with each timing, the ratios arena-rank / ours and the largest
absolute score difference once both pin the same model to the same score.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.rating import (  # noqa: E402
    LMARENA_ANCHOR,
    aggregate_battles,
    cells_from_pair_counts,
    compute_leaderboard,
)

ANCHOR_MODEL, ANCHOR_SCORE = LMARENA_ANCHOR
ROUNDS = 100


def synthetic_battles(n_battles: int, n_models: int, seed: int) -> dict[str, Any]:
    """Battle columns (numpy string arrays) and the true ratings."""
    rng = np.random.default_rng(seed)
    names = np.array([ANCHOR_MODEL] + [f"model-{k:03d}" for k in range(1, n_models)])
    true = rng.normal(1000.0, 100.0, n_models)
    lo, hi = np.triu_indices(n_models, k=1)
    popularity = 1.0 / rng.permutation(np.arange(1, lo.size + 1))
    pair = rng.choice(lo.size, size=n_battles, p=popularity / popularity.sum())
    swap = rng.random(n_battles) < 0.5
    ia = np.where(swap, hi[pair], lo[pair])
    ib = np.where(swap, lo[pair], hi[pair])
    p_a = 1.0 / (1.0 + 10.0 ** ((true[ib] - true[ia]) / 400.0))
    u = rng.random(n_battles)
    tie = rng.random(n_battles) < 0.2
    labels = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])
    code = np.where(tie, 2 + (rng.random(n_battles) < 0.5), np.where(u < p_a, 0, 1))
    return {"model_a": names[ia], "model_b": names[ib], "winner": labels[code], "true": true}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time over `repeat` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def ours(data: dict[str, Any]) -> dict[str, Any]:
    a, b, w = data["model_a"], data["model_b"], data["winner"]

    def from_battles() -> Any:
        cells = aggregate_battles(a, b, w)
        return cells, compute_leaderboard(cells, anchor=LMARENA_ANCHOR)

    t_battles, (cells, board) = timed(from_battles, 7)
    # stored pair counts as the app's SQLite store would return them: lists of rows
    names = cells.models
    pa = [names[k] for k in cells.i.tolist()]
    pb = [names[k] for k in cells.j.tolist()]
    wa, wb, ti = (cells.counts[:, k].tolist() for k in range(3))

    def from_counts() -> Any:
        c = cells_from_pair_counts(pa, pb, wa, wb, ti)
        return compute_leaderboard(c, anchor=LMARENA_ANCHOR)

    t_counts, _ = timed(from_counts, 20)
    t_boot, boot = timed(
        lambda: compute_leaderboard(cells, anchor=LMARENA_ANCHOR, ci="bootstrap", rounds=ROUNDS),
        3,
    )
    scores = {r.model: r.rating for r in board.rows}
    width_s = np.mean([r.ci_upper - r.ci_lower for r in board.rows])
    width_b = np.mean([r.ci_upper - r.ci_lower for r in boot.rows])
    return {
        "battles": t_battles,
        "counts": t_counts,
        "boot": t_boot,
        "scores": scores,
        "info": board.info,
        "width_s": width_s,
        "width_b": width_b,
    }


def arena_rank(data: dict[str, Any]) -> dict[str, Any] | None:
    try:
        import jax
        import pandas as pd
        from arena_rank.models.bradley_terry import BradleyTerry, fit_single_bootstrap_sample
        from arena_rank.utils.data_utils import PairDataset
    except ImportError:
        return None
    df = pd.DataFrame({k: data[k] for k in ("model_a", "model_b", "winner")})

    def run() -> Any:
        ds = PairDataset.from_pandas(df)
        model = BradleyTerry(n_competitors=len(ds.competitors))
        res = model.compute_ratings_and_cis(ds, ci_method="sandwich")
        jax.block_until_ready(res["rating_upper"])
        return ds, model, res

    t0 = time.perf_counter()
    run()
    cold = time.perf_counter() - t0
    warm, (ds, model, res) = timed(run, 2)
    key = jax.random.PRNGKey(42)
    total = float(ds.counts.sum())

    def draw() -> Any:
        out = jax.random.multinomial(
            key=key,
            n=total,
            p=ds.counts / total,
            shape=(ROUNDS, ds.counts.shape[0]),
            dtype=model.dtype,
        )
        return jax.block_until_ready(out)

    t_draw, counts = timed(draw, 1)

    def one_round(r: int) -> Any:
        params = fit_single_bootstrap_sample(counts[r], model, ds)
        return jax.block_until_ready(params["ratings"])

    one_round(0)  # compile
    per_round, _ = timed(lambda: [one_round(r) for r in range(1, 4)], 1)
    boot = t_draw + per_round / 3 * ROUNDS
    comp = list(ds.competitors)
    ratings = np.asarray(res["ratings"])
    shift = ANCHOR_SCORE - ratings[comp.index(ANCHOR_MODEL)]
    scores = {m: float(r + shift) for m, r in zip(comp, ratings, strict=True)}
    return {"cold": cold, "warm": warm, "boot": boot, "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=1_500_000)
    parser.add_argument("--models", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    data = synthetic_battles(args.battles, args.models, args.seed)
    print(
        f"{args.battles:,} battles over {args.models} models, seed {args.seed} "
        f"(generated in {time.perf_counter() - t0:.1f} s)"
    )
    mine = ours(data)
    info = mine["info"]
    print(
        f"ours: converged={info.converged} iterations={info.iterations} "
        f"grad_norm={info.grad_norm:.1e}; mean 95% width sandwich {mine['width_s']:.2f}, "
        f"bootstrap {mine['width_b']:.2f}"
    )
    ref = arena_rank(data)

    def ms(x: float) -> str:
        return f"{1e3 * x:10.1f} ms"

    rows = [
        ("ours: fit + sandwich + rank, from battles", mine["battles"]),
        ("ours: fit + sandwich + rank, from pair counts", mine["counts"]),
        (f"ours: bootstrap {ROUNDS} rounds", mine["boot"]),
    ]
    if ref is not None:
        rows += [
            ("arena-rank: from_pandas + sandwich (cold, JIT)", ref["cold"]),
            ("arena-rank: from_pandas + sandwich (warm)", ref["warm"]),
            (f"arena-rank: bootstrap {ROUNDS} rounds (est.)", ref["boot"]),
        ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measurement':<{width}}  {'time':>13}")
    print("-" * (width + 15))
    for label, t in rows:
        print(f"{label:<{width}}  {ms(t)}")
    print("-" * (width + 15))
    if ref is None:
        print("arena-rank is not installed: the anchor is missing (pip install arena-rank==0.1.1 to compare).")
        return
    diff = max(abs(mine["scores"][m] - ref["scores"][m]) for m in mine["scores"])
    print(
        f"{'ratio fit+intervals, arena-rank warm / ours from battles':<{width}}  "
        f"{ref['warm'] / mine['battles']:10.1f} x   (target >= 20)"
    )
    print(
        f"{'ratio fit+intervals, arena-rank cold / ours from battles':<{width}}  "
        f"{ref['cold'] / mine['battles']:10.1f} x"
    )
    print(f"{'ours from pair counts':<{width}}  {ms(mine['counts'])}   (target <= 20 ms)")
    print(f"{'ratio bootstrap-100, arena-rank / ours':<{width}}  {ref['boot'] / mine['boot']:10.1f} x   (target >= 20)")
    print(f"{'max |score difference| (both pin ' + ANCHOR_MODEL + ')':<{width}}  {diff:10.4f} pts (target <= 0.05)")


if __name__ == "__main__":
    main()
