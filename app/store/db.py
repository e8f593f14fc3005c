"""SQLite access: every write through one writer thread, reads through aiosqlite.

Writes are plain functions of a ``sqlite3.Connection``. The writer runs whatever is queued in one
transaction (group commit), each function inside its own savepoint, so one failing write never
undoes another and many small writes cost one commit.

A write the disk refuses (full, read-only, failing) is a :class:`~app.errors.StorageUnavailable`
(:class:`~app.errors.StorageFull` when full), never a bare ``sqlite3`` error; ``write_error``
says why until :meth:`Store.writable`'s probe write passes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from app.errors import StorageFull, StorageUnavailable
from app.store import migrations
from app.store.recovery import interrupt_unfinished

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], T]

_STOP = object()

# SQLite's primary result codes for a disk that takes no writes (extended codes share the low byte)
SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 8, 10, 13, 14
STORAGE_CODES = {SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN}
PROBE_BYTES = 64 * 1024  # a write probe needs fresh room on the disk, as a battle's write does


class StoreError(Exception):
    """The database cannot be opened for writing at start-up; the message is one line."""


def storage_failure(exc: BaseException) -> str | None:
    """Why the disk refused a write (for messages and /ready), or None for any other error."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None or code & 0xFF not in STORAGE_CODES:
        return None
    return "the disk is full" if code & 0xFF == SQLITE_FULL else f"the disk refuses writes ({exc})"


def _refusal(reason: str) -> StorageUnavailable:
    kind = StorageFull if reason == "the disk is full" else StorageUnavailable
    return kind(
        f"The server cannot save anything right now: {reason}. Nothing was stored; try again later.",
        retry_after=30,
        code="storage_full" if kind is StorageFull else "storage_unavailable",
    )


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?)",
        (f"{time.time():.3f} " + "." * PROBE_BYTES,),
    )


def check_writable(path: str) -> None:
    """At start-up: the database can be created, migrated and written, or :class:`StoreError`
    with one line saying why (a read-only file or folder, a full disk)."""
    try:
        migrations.apply(path)
        conn = _connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            _probe(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(
            f"cannot write the database {path}: {exc} (is its file or folder read-only, or the disk full?)"
        ) from None


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
        self.write_error: str | None = None  # why the last write failed on the disk; None once one works
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
        """Run ``fn(conn)`` in the writer's transaction and return its result (or raise; a disk
        that refuses the write raises :class:`StorageUnavailable`)."""
        future: Future[T] = Future()
        self._queue.put((fn, future))
        try:
            return await asyncio.wrap_future(future)
        except sqlite3.Error as exc:
            reason = storage_failure(exc)
            if reason is None:
                raise
            raise _refusal(reason) from exc

    async def writable(self) -> bool:
        """Whether writes work: true unless one failed on the disk; from then on, until a probe
        write passes. The probe needs fresh room (64 KB), as a battle's writes do: a small write
        that still fits on a nearly full disk does not make the store writable again."""
        if self.write_error is None:
            return True
        try:
            await self.write(_probe)
        except StorageUnavailable:
            return False
        log.warning("the database takes writes again")
        self.write_error = None
        return True

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
        disk: BaseException | None = None  # a write the disk refused (full, read-only)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, future in batch:
                conn.execute("SAVEPOINT w")
                try:
                    value = fn(conn)
                except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                    disk = exc if storage_failure(exc) else disk
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    results.append((future, False, exc))
                else:
                    conn.execute("RELEASE w")
                    results.append((future, True, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A full disk may have rolled the transaction back already (then ROLLBACK TO fails):
            # every write of the batch gets the disk's error, and the writer thread lives on.
            failure = exc if storage_failure(exc) or disk is None else disk
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self._disk_failed(failure)
            for _, future in batch:
                _settle(future, False, failure)
            return
        if disk is not None:
            self._disk_failed(disk)
        self.writes += len(batch)
        self.commits += 1
        for future, ok, value in results:  # only once the commit is durable
            _settle(future, ok, value)

    def _disk_failed(self, exc: BaseException) -> None:
        reason = storage_failure(exc)
        if reason is not None:
            if self.write_error is None:
                log.error("the database refused a write: %s", reason)
            self.write_error = reason

    # -- reading ------------------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[aiosqlite.Row]:
        assert self._reader is not None, "store is not open"
        async with self._reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None
