"""SQLite access: every write through one writer thread, reads through aiosqlite.

Writes are plain functions of a ``sqlite3.Connection``. The writer runs whatever is queued in one
transaction (group commit), each function inside its own savepoint, so one failing write never
undoes another and many small writes cost one commit.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from app.store import migrations
from app.store.recovery import interrupt_unfinished

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], T]

_STOP = object()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _settle(future: Future[Any], ok: bool, value: Any) -> None:
    """Hand a result back. A caller that gave up (its task was cancelled) has cancelled the
    future; its write still stands, and the writer thread must not die of the late answer."""
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except InvalidStateError:
        pass


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: aiosqlite.Connection | None = None
        self.writes = 0
        self.commits = 0
        self.interrupted = 0  # battles found mid-turn at start-up (see app.store.recovery)

    async def open(self) -> None:
        await asyncio.to_thread(migrations.apply, self.path)
        conn = _connect(self.path)
        self.interrupted = await asyncio.to_thread(interrupt_unfinished, conn)
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name="sqlite-writer", daemon=True)
        self._writer.start()
        self._reader = await aiosqlite.connect(self.path)
        self._reader.row_factory = aiosqlite.Row
        await self._reader.execute("PRAGMA busy_timeout=5000")

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    # -- writing ------------------------------------------------------------------------------

    async def write(self, fn: WriteFn[T]) -> T:
        """Run ``fn(conn)`` in the writer's transaction and return its result (or raise)."""
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return await asyncio.wrap_future(future)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            stop = False
            while len(batch) < 512:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._run_batch(conn, batch)
            if stop:
                break
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[tuple[WriteFn[Any], Future[Any]]]) -> None:
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, future in batch:
                conn.execute("SAVEPOINT w")
                try:
                    value = fn(conn)
                except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    results.append((future, False, exc))
                else:
                    conn.execute("RELEASE w")
                    results.append((future, True, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _, future in batch:
                _settle(future, False, exc)
            return
        self.writes += len(batch)
        self.commits += 1
        for future, ok, value in results:  # only once the commit is durable
            _settle(future, ok, value)

    # -- reading ------------------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[aiosqlite.Row]:
        assert self._reader is not None, "store is not open"
        async with self._reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None
