"""The leaderboard as the app serves it: rating functions over the stored votes, with model
metadata and benchmark scores joined in.

The API, the page and the CLI all build their answer here, so their JSON has one shape. The
:class:`Service` never fits on the event loop: fits run in one worker thread with BLAS held to
one thread, at most one fit per query runs at a time (concurrent requests share it), finished
boards sit in a bounded LRU cache, and a bootstrap still running answers with the last board
marked ``stale``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from app.rating import battle_count_matrix, win_rate_matrix
from app.rating.board import BoardData, Fitted, Query, check_anchor, fit_board, provisional
from app.rating.leaderboard import Leaderboard
from app.rating.options import Counts, VoteRows
from app.store.db import Store

CACHE_SIZE = 64  # boards kept (LRU); a query is bounded, so this bounds memory
BOOTSTRAP_WAIT = 1.0  # seconds a first bootstrap request waits before it gets sandwich intervals
STALE_NOTICE = "Bootstrap intervals are being recomputed; this board is from before the latest votes."
PENDING_NOTICE = "Bootstrap intervals are being computed; showing sandwich intervals until they are ready."


def _round(x: float) -> float:
    return round(float(x), 2)


def _model_json(
    row: Any, meta: Mapping[str, Any], scores: Mapping[str, float], columns: Sequence[str], provisional: bool
) -> dict[str, Any]:
    return {
        "model": row.model,
        "name": meta.get("name") or row.model,
        "rating": _round(row.rating),
        "ci_lower": _round(row.ci_lower),
        "ci_upper": _round(row.ci_upper),
        "ci_plus": _round(row.ci_upper - row.rating),
        "ci_minus": _round(row.rating - row.ci_lower),
        "rank_ub": row.rank_ub,
        "votes": row.votes,
        "provisional": provisional,
        "organization": meta.get("organization", ""),
        "license": meta.get("license", ""),
        "parameters": meta.get("parameters", ""),
        "scores": {c: scores.get(c) for c in columns},
    }


def board_json(
    board: Leaderboard,
    *,
    total_votes: int,
    category: str,
    style_control: bool,
    metadata: Mapping[str, Mapping[str, Any]],
    scores: Mapping[str, Mapping[str, float]],
    updated: float,
    provisional: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The API's response shape (also the CLI's ``--format json``)."""
    columns = sorted({c for s in scores.values() for c in s})
    models = [
        _model_json(row, metadata.get(row.model, {}), scores.get(row.model, {}), columns, row.model in provisional)
        for row in board.rows
    ]
    out = empty_json(category, style_control, board.ci, updated)
    out.update(
        models=models,
        total_votes=total_votes,
        benchmarks=columns,
        hidden=list(board.hidden),
        coefficients=dict(board.coefficients or {}),
        fit={
            "converged": bool(board.info.converged),
            "iterations": int(board.info.iterations),
            "grad_norm": float(board.info.grad_norm),
            "identifiable": bool(board.info.identifiable),
            "prior": not board.info.identifiable,
            "ridge": float(board.info.ridge),
        },
    )
    return out


def empty_json(category: str, style_control: bool, ci: str, updated: float) -> dict[str, Any]:
    return {
        "models": [],
        "total_votes": 0,
        "updated": updated,
        "category": category,
        "style_control": style_control,
        "ci": ci,
        "benchmarks": [],
        "hidden": [],
        "coefficients": {},
        "fit": None,
        "notice": None,
        "options": None,
        "stale": False,
    }


def add_raw_ranking(out: dict[str, Any], plain: Leaderboard | None) -> None:
    """Put the plain (not style-controlled) score and rank beside each style-controlled row."""
    raw = {r.model: r for r in plain.rows} if plain is not None else {}
    for model in out["models"]:
        row = raw.get(model["model"])
        model["raw_rating"] = _round(row.rating) if row else None
        model["raw_rank_ub"] = row.rank_ub if row else None


def fitted_json(
    fitted: Fitted,
    query: Query,
    *,
    metadata: Mapping[str, Mapping[str, Any]],
    scores: Mapping[str, Mapping[str, float]],
    overall_votes: Mapping[str, int],
) -> dict[str, Any]:
    """A fitted query as the API's JSON (``total_votes`` and ``options`` are the votes used)."""
    updated = time.time()
    style = query.style_control and fitted.plain is not None
    if fitted.board is None:
        out = empty_json(query.category, query.style_control, query.ci, updated)
    else:
        out = board_json(
            fitted.board,
            total_votes=fitted.votes_used,
            category=query.category,
            style_control=style,
            metadata=metadata,
            scores=scores,
            updated=updated,
            provisional=provisional(overall_votes, query.provisional_votes),
        )
    out["notice"] = fitted.notice or None
    out["options"] = fitted.options
    out["provisional_votes"] = query.provisional_votes
    if style:
        add_raw_ranking(out, fitted.plain)
    return out


def matrices(counts: Counts, order: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Win-rate and battle-count matrices in leaderboard order."""
    cells = counts.cells()
    index = {m: i for i, m in enumerate(cells.models)}
    keep = [m for m in order if m in index]
    pick = [index[m] for m in keep]
    win = win_rate_matrix(cells)[np.ix_(pick, pick)]
    count = battle_count_matrix(cells)[np.ix_(pick, pick)]
    return keep, win, count


# -- reading the store ------------------------------------------------------------------------


_STYLE_COLUMNS = ", ".join(f"v.{s}_sf_{c}" for s in "ab" for c in ("tokens", "headers", "lists", "bold"))
COUNTS_SQL = "SELECT model_a, model_b, wins_a, wins_b, ties + bothbad FROM pair_counts WHERE mode = ? AND category = ?"
VOTES_SQL = (
    "SELECT v.model_a, v.model_b, v.winner, v.pair_prob, v.voter_hash, b.first_prompt, "
    f"{_STYLE_COLUMNS} FROM votes v JOIN battles b ON b.id = v.battle_id"
    " WHERE v.mode = ? AND (' ' || v.categories || ' ') LIKE ? AND v.flags = ''"
)
# The include_flagged option: votes flagged for an identity leak count too (a moderation flag still keeps a vote out).
VOTES_SQL_INCLUDING_FLAGGED = VOTES_SQL.replace("v.flags = ''", "v.flags IN ('', 'identity')")


def counts_from_rows(rows: Sequence[Sequence[Any]]) -> Counts:
    """Rows of :data:`COUNTS_SQL` as :class:`Counts`."""
    return Counts(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows]
    )


def votes_from_rows(rows: Sequence[Sequence[Any]]) -> VoteRows:
    """Rows of :data:`VOTES_SQL` as :class:`VoteRows`."""
    return VoteRows(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [float(r[3] or 1.0) for r in rows],
        [r[4] or "" for r in rows],
        [r[5] or "" for r in rows],
        [tuple(x or 0 for x in r[6:10]) for r in rows],
        [tuple(x or 0 for x in r[10:14]) for r in rows],
    )


def votes_per_model(counts: Counts) -> dict[str, int]:
    out: dict[str, int] = {}
    for a, b, x, y, z in zip(counts.model_a, counts.model_b, counts.wins_a, counts.wins_b, counts.ties, strict=True):
        n = round(x + y + z)
        out[a] = out.get(a, 0) + n
        out[b] = out.get(b, 0) + n
    return out


async def load_counts(store: Store, category: str, mode: str = "anony") -> Counts:
    return counts_from_rows(await store.fetchall(COUNTS_SQL, (mode, category)))


async def load_categories(store: Store, mode: str = "anony") -> list[str]:
    rows = await store.fetchall("SELECT DISTINCT category FROM pair_counts WHERE mode = ?", (mode,))
    names = sorted(r[0] for r in rows)
    return sorted(names, key=lambda c: (c != "overall", c.startswith("language:"), c))


async def load_scores(store: Store) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in await store.fetchall("SELECT model, column, value FROM scores"):
        out.setdefault(r[0], {})[r[1]] = r[2]
    return out


# -- the service ------------------------------------------------------------------------------


def _one_blas_thread() -> None:
    """Fit threads' initializer: hold BLAS to one thread (process-wide, where the BLAS is
    shared). Its default, one thread per core, fights the event loop and the engines for the
    cores; the rating fits are small matrix work that gains nothing from more."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _pool(name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=_one_blas_thread)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """A shared build may finish with nobody waiting (a stale answer went out): still read its error."""
    if not task.cancelled():
        task.exception()


@dataclass
class _Entry:
    version: int
    at: float
    value: Any


@dataclass
class Service:
    """Computes boards on demand and keeps each until a vote changes the counts.

    ``version`` is bumped by every vote in this process; a short time-to-live also picks up
    changes made by other processes (``arena battles import``).
    """

    store: Store
    ttl: float = 2.0
    cache_size: int = CACHE_SIZE
    version: int = 0
    _cache: OrderedDict[tuple[Any, ...], _Entry] = field(default_factory=OrderedDict)
    _running: dict[tuple[Any, ...], asyncio.Future[Any]] = field(default_factory=dict)
    # bootstrap fits queue in their own thread, so a plain board never waits behind them
    _slow: ThreadPoolExecutor = field(default_factory=lambda: _pool("leaderboard-bootstrap"))
    _fast: ThreadPoolExecutor = field(default_factory=lambda: _pool("leaderboard"))

    def bump(self) -> None:
        self.version += 1

    def close(self) -> None:
        for pool in (self._slow, self._fast):
            pool.shutdown(wait=False, cancel_futures=True)

    async def in_worker(self, work: Callable[[], Any], *, slow: bool = False) -> Any:
        """Run blocking rating work in a fit thread, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._slow if slow else self._fast, work)

    def _fresh(self, key: tuple[Any, ...], ttl: float) -> _Entry | None:
        hit = self._cache.get(key)
        if hit is not None and hit.version == self.version and time.monotonic() - hit.at < ttl:
            self._cache.move_to_end(key)
            return hit
        return None

    def _start(self, key: tuple[Any, ...], build: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        """The running build for ``key``, started if none is (single flight)."""
        running = self._running.get(key)
        if running is not None:
            return running
        version, at = self.version, time.monotonic()

        async def run() -> Any:
            try:
                value = await build()
                self._cache[key] = _Entry(version, at, value)
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                return value
            finally:
                self._running.pop(key, None)

        task = asyncio.ensure_future(run())
        task.add_done_callback(_retrieve)
        self._running[key] = task
        return task

    async def _cached(self, key: tuple[Any, ...], ttl: float, build: Callable[[], Awaitable[Any]]) -> Any:
        hit = self._fresh(key, ttl)
        if hit is not None:
            return hit.value
        return await asyncio.shield(self._start(key, build))

    async def _load(self, query: Query) -> tuple[BoardData, dict[str, int]]:
        base = "overall" if query.mode == "anony" else query.category  # a judge's board is one category
        overall = await self.counts(base, query.mode)
        counts = overall if query.category == base else await self.counts(query.category, query.mode)
        data = BoardData(counts)
        if query.needs_votes:
            sql = VOTES_SQL_INCLUDING_FLAGGED if query.options.include_flagged else VOTES_SQL
            rows = await self.store.fetchall(sql, (query.mode, f"% {query.category} %"))
            data = BoardData(counts, await self.in_worker(lambda: votes_from_rows(rows)))
        return data, votes_per_model(overall)

    async def _build(self, metadata: Mapping[str, Mapping[str, Any]], query: Query) -> dict[str, Any]:
        data, overall_votes = await self._load(query)
        check_anchor(query, set(overall_votes) | set(metadata))
        scores = await load_scores(self.store)

        def work() -> dict[str, Any]:
            fitted = fit_board(data, query)
            return fitted_json(fitted, query, metadata=metadata, scores=scores, overall_votes=overall_votes)

        out: dict[str, Any] = await self.in_worker(work, slow=query.ci == "bootstrap")
        return out

    async def board(self, metadata: Mapping[str, Mapping[str, Any]], query: Query) -> dict[str, Any]:
        """The board for ``query``; see the class docstring for what a bootstrap in progress gives."""
        key = ("board", query)
        # style control reads every vote, so it is kept longer between recomputations
        ttl = self.ttl * (15 if query.style_control else 1)
        hit = self._fresh(key, ttl)
        if hit is not None:
            return dict(hit.value)
        task = self._start(key, lambda: self._build(metadata, query))
        if query.ci != "bootstrap":
            return dict(await asyncio.shield(task))
        last = self._cache.get(key)
        if last is not None:
            return {**last.value, "stale": True, "notice": STALE_NOTICE}
        try:
            return dict(await asyncio.wait_for(asyncio.shield(task), BOOTSTRAP_WAIT))
        except TimeoutError:
            sandwich = await self.board(metadata, replace(query, ci="sandwich"))
            return {**sandwich, "stale": True, "notice": PENDING_NOTICE}

    async def counts(self, category: str = "overall", mode: str = "anony") -> Counts:
        return await self._cached(("counts", mode, category), self.ttl, lambda: load_counts(self.store, category, mode))
