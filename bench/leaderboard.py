"""Leaderboard benchmark: the whole `arena leaderboard --battles FILE` command against
arena-rank's load + fit + CI, on the same file, in the same run.

    python bench/leaderboard.py [--battles 1670000] [--models 129] [--tie-share 0.3] [--seed 0]

Generates (once, cached under the system temp folder) a clean-battle JSON array of the shape
of LMSYS's public dump (clean_battle_20240814_public.json: 1.67M battles, 129 models): per row
question_id, model_a, model_b, winner, judge, turn, anony, language, tstamp, conv_metadata,
is_code, is_refusal, dedup_tag and category_tag. True ratings ~ N(1000, 100), Zipf-like pair
popularity, random sides, `--tie-share` ties (split between "tie" and "tie (bothbad)";
0.3 is our estimate of the dump's share, which is not available offline), 3% named battles.

Then times, in one run:
  (a) ours, the real command as a whole process (interpreter start, imports, decode, aggregate,
      fit, sandwich intervals, JSON out): `python -m app leaderboard --battles FILE --format json`;
      also with `--ci bootstrap` (100 rounds) and `--category language:en`;
  (b) arena-rank 0.1.1 (pip install arena-rank==0.1.1 pandas), in this process: pandas.read_json
      of the same file, the anonymous rows, PairDataset.from_pandas and
      BradleyTerry.compute_ratings_and_cis(ci_method="sandwich"). Its imports and JIT warm-up are
      not counted (a favour to the anchor).
Prints each time, the ratio arena-rank / ours (target >= 20) and the largest score difference
once both pin the same model to the same score.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "mixtral-8x7b-instruct-v0.1"
LANGUAGES = np.array(["English", "Chinese", "Russian", "German", "Spanish", "French", "Japanese", "unknown"])
LANGUAGE_SHARE = np.array([0.62, 0.1, 0.07, 0.04, 0.04, 0.03, 0.03, 0.07])


def _row(k: int, a: str, b: str, winner: str, lang: str, turn: int, anony: bool, tokens: Any) -> str:
    meta = {
        "sum_user_tokens": int(tokens[0]),
        "sum_assistant_a_tokens": int(tokens[1]),
        "sum_assistant_b_tokens": int(tokens[2]),
        "context_a_tokens": int(tokens[0]),
        "context_b_tokens": int(tokens[0]),
        "turns": turn,
        "header_count_a": {"h1": 0, "h2": 0, "h3": int(tokens[3] % 3)},
        "list_count_a": {"ordered": int(tokens[3] % 5), "unordered": 0},
        "bold_count_a": {"**": int(tokens[3] % 4), "__": 0},
        "header_count_b": {"h1": 0, "h2": 0, "h3": int(tokens[4] % 3)},
        "list_count_b": {"ordered": int(tokens[4] % 5), "unordered": 0},
        "bold_count_b": {"**": int(tokens[4] % 4), "__": 0},
    }
    row = {
        "question_id": f"{k:032x}",
        "model_a": a,
        "model_b": b,
        "winner": winner,
        "judge": f"arena_user_{k % 50_000:06d}",
        "turn": turn,
        "anony": anony,
        "language": lang,
        "tstamp": 1_700_000_000.0 + k * 7.3,
        "conv_metadata": meta,
        "is_code": bool(tokens[3] % 5 == 0),
        "is_refusal": False,
        "dedup_tag": {"high_freq": False, "sampled": True},
        "category_tag": {
            "criteria_v0.1": {"specificity": bool(k % 2), "domain_knowledge": True, "complexity": False},
            "if_v0.1": {"if": False, "score": int(tokens[3] % 5)},
            "math_v0.1": {"math": False},
        },
    }
    return json.dumps(row)


def make_file(path: Path, n: int, n_models: int, tie_share: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    names = [ANCHOR] + [f"model-{k:03d}" for k in range(1, n_models)]
    true = rng.normal(1000.0, 100.0, n_models)
    lo, hi = np.triu_indices(n_models, k=1)
    popularity = 1.0 / rng.permutation(np.arange(1, lo.size + 1))
    pair = rng.choice(lo.size, size=n, p=popularity / popularity.sum())
    swap = rng.random(n) < 0.5
    ia, ib = np.where(swap, hi[pair], lo[pair]), np.where(swap, lo[pair], hi[pair])
    p_a = 1.0 / (1.0 + 10.0 ** ((true[ib] - true[ia]) / 400.0))
    tie = rng.random(n) < tie_share
    code = np.where(tie, 2 + (rng.random(n) < 0.55), np.where(rng.random(n) < p_a, 0, 1))
    labels = ["model_a", "model_b", "tie", "tie (bothbad)"]
    lang = rng.choice(LANGUAGES, size=n, p=LANGUAGE_SHARE)
    turn = 1 + (rng.random(n) < 0.15) * rng.integers(1, 4, n)
    anony = rng.random(n) >= 0.03
    tokens = rng.integers(1, 2000, (n, 5))
    with path.open("w") as f:
        f.write("[\n")
        for k in range(n):
            f.write(
                _row(
                    k,
                    names[ia[k]],
                    names[ib[k]],
                    labels[code[k]],
                    str(lang[k]),
                    int(turn[k]),
                    bool(anony[k]),
                    tokens[k],
                )
            )
            f.write(",\n" if k < n - 1 else "\n]\n")
    return {names[k]: float(true[k]) for k in range(n_models)}


def ours(path: Path, *extra: str) -> tuple[float, dict[str, Any]]:
    """Wall time of the real command as a whole process, and its JSON."""
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "app", "leaderboard", "--battles", str(path), "--format", "json", *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return time.perf_counter() - t0, json.loads(run.stdout)


def arena_rank(path: Path) -> tuple[float, dict[str, float]] | None:
    try:
        import jax
        import pandas as pd
        from arena_rank.models.bradley_terry import BradleyTerry
        from arena_rank.utils.data_utils import PairDataset
    except ImportError:
        return None

    def run(df: Any) -> Any:
        ds = PairDataset.from_pandas(df[df["anony"]][["model_a", "model_b", "winner"]])
        model = BradleyTerry(n_competitors=len(ds.competitors))
        res = model.compute_ratings_and_cis(ds, ci_method="sandwich")
        jax.block_until_ready(res["rating_upper"])
        return ds, res

    small = pd.DataFrame({"model_a": ["a", "b"], "model_b": ["b", "a"], "winner": ["model_a", "tie"], "anony": True})
    run(small)  # JIT warm-up, not counted
    t0 = time.perf_counter()
    df = pd.read_json(path)
    ds, res = run(df)
    elapsed = time.perf_counter() - t0
    comp = list(ds.competitors)
    ratings = np.asarray(res["ratings"])
    shift = 1000.0 - ratings[comp.index(ANCHOR)]
    return elapsed, {m: float(r + shift) for m, r in zip(comp, ratings, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=1_670_000)
    parser.add_argument("--models", type=int, default=129)
    parser.add_argument("--tie-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"arena-bench-{args.battles}-{args.models}-{args.tie_share}-{args.seed}.json"
    if not path.exists():
        t0 = time.perf_counter()
        make_file(path.with_suffix(".tmp"), args.battles, args.models, args.tie_share, args.seed)
        path.with_suffix(".tmp").rename(path)
        print(f"generated {path} in {time.perf_counter() - t0:.1f} s")
    print(f"{args.battles:,} battles, {args.models} models, {path.stat().st_size / 1e6:.0f} MB: {path}")
    anchor = [f"--anchor={ANCHOR}=1000"]
    t_ours, board = ours(path, *anchor)
    t_boot, _ = ours(path, *anchor, "--ci", "bootstrap")
    t_lang, lang = ours(path, *anchor, "--category", "language:en")
    ref = arena_rank(path)
    rows = [
        ("ours: arena leaderboard --battles (whole process, sandwich)", t_ours),
        ("ours: same, --ci bootstrap (100 rounds)", t_boot),
        ("ours: same, --category language:en", t_lang),
    ]
    if ref is not None:
        rows.append(("arena-rank: read_json + from_pandas + sandwich (in process)", ref[0]))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement':<{width}}  {'seconds':>9}\n" + "-" * (width + 11))
    for label, t in rows:
        print(f"{label:<{width}}  {t:9.2f}")
    print("-" * (width + 11))
    print(f"votes counted: overall {board['total_votes']:,}, language:en {lang['total_votes']:,}")
    if ref is None:
        print("arena-rank is not installed: no anchor (pip install arena-rank==0.1.1 pandas).")
        return
    mine = {m["model"]: m["rating"] for m in board["models"]}
    diff = max(abs(mine[m] - ref[1][m]) for m in mine)
    print(f"{'ratio arena-rank / ours (target >= 20)':<{width}}  {ref[0] / t_ours:9.1f}x")
    print(f"{'max |score difference|, both pin ' + ANCHOR:<{width}}  {diff:9.3f}")


if __name__ == "__main__":
    main()
