"""Background eval jobs, for /admin: one at a time per server, with progress, cancelled at shutdown.

A :class:`Jobs` lives on the app's state. :meth:`Jobs.start` runs a job's work as an asyncio task
in the server's loop (eval generations are admitted after people's, see ``app.eval.context``);
the work reports ``(done, total)`` steps, from which the job's throughput and ETA are read. The
rate counts from the first report, so work found in the cache (done at once) does not inflate it.
The last job stays readable after it ends, with its result or its error, until the next starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import Conflict, Invalid
from app.eval.context import EvalContext
from app.eval.runs import run_tournament
from app.eval.suites import Suite

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Work = Callable[[Progress], Awaitable[dict[str, Any]]]


@dataclass
class Job:
    """One background job and how far it got."""

    id: str
    kind: str
    title: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    total: int = 0
    state: str = "running"  # running | done | failed | cancelled
    error: str = ""
    result: dict[str, Any] | None = None
    finished: float | None = None
    _first: tuple[float, int] | None = None  # (when, done) at the first report: the rate counts from there

    def report(self, done: int, total: int, now: float | None = None) -> None:
        if self._first is None:
            self._first = (now or time.monotonic(), max(done - 1, 0))
        self.done, self.total = done, total

    def elapsed(self, now: float | None = None) -> float:
        return (self.finished or now or time.monotonic()) - self.started

    def rate(self, now: float | None = None) -> float:
        """Steps per second since the first report (0 before two reports)."""
        if self._first is None:
            return 0.0
        since, base = self._first
        seconds = (self.finished or now or time.monotonic()) - since
        return max(self.done - base, 0) / seconds if seconds > 0 else 0.0

    def eta(self, now: float | None = None) -> float:
        """Seconds left at the current rate; inf when unknown, 0 once finished."""
        if self.state != "running":
            return 0.0
        rate = self.rate(now)
        return (self.total - self.done) / rate if rate > 0 else math.inf

    @property
    def running(self) -> bool:
        return self.state == "running"


class Jobs:
    """The server's background jobs: at most one running."""

    def __init__(self) -> None:
        self.current: Job | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, kind: str, title: str, work: Work) -> Job:
        """Run ``work`` in the background as the current job; Conflict while one is running."""
        if self.current is not None and self.current.running:
            raise Conflict("An eval job is already running: wait for it to finish, or cancel it.")
        job = Job(uuid.uuid4().hex[:12], kind, title)
        self.current = job
        self._task = asyncio.create_task(self._run(job, work), name=f"eval-job-{job.id}")
        return job

    async def _run(self, job: Job, work: Work) -> None:
        try:
            job.result = await work(job.report)
            job.state = "done"
        except asyncio.CancelledError:
            job.state = "cancelled"
            raise
        except Exception as exc:  # noqa: BLE001 - a failed job is shown on the page, the server goes on
            log.exception("eval job %s failed", job.id)
            job.state, job.error = "failed", str(exc) or type(exc).__name__
        finally:
            job.finished = time.monotonic()

    async def cancel(self) -> None:
        """Cancel the running job (if any) and wait until it has stopped."""
        task, job = self._task, self.current
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if job is not None and job.running:  # cancelled before its task first ran
            job.state, job.finished = "cancelled", time.monotonic()

    async def close(self) -> None:
        """At shutdown (the lifespan's ``finally``): nothing keeps running."""
        await self.cancel()


def tournament(ctx: EvalContext, suite: Suite, models: Sequence[str], judge: str) -> Work:
    """A tournament as a job's work: every pair of ``models`` on every prompt of ``suite``."""
    names = sorted(set(models))
    if len(names) < 2:
        raise Invalid("Pick at least two models for a tournament.", param="models")
    if not judge:
        raise Invalid("Pick a judge.", param="judge")

    async def work(progress: Progress) -> dict[str, Any]:
        result = await run_tournament(ctx, suite, names, judge, progress)
        return result.as_json()

    return work
