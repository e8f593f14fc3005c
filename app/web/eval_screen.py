"""The admin's eval screen (admin_eval.html): the form that starts a tournament, and the ``job``
block that shows the background job's progress (polled by htmx while it runs) and its board."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.eval.jobs import Job


@dataclass(frozen=True)
class BoardRow:
    """A tournament result's row."""

    rank_ub: int
    model: str
    rating: float
    ci: str
    votes: int


@dataclass(frozen=True)
class JobView:
    """The job block's fields, as text where the template shows text."""

    id: str
    title: str
    state: str  # running | done | failed | cancelled
    running: bool
    done: int
    total: int
    percent: int
    rate: str  # "3.1 steps/s"
    eta: str  # "0:09", "--:--" when unknown
    elapsed: str
    error: str
    summary: str  # pairs decided, ties, parse failures (once done)
    board: list[BoardRow]


@dataclass(frozen=True)
class EvalScreen:
    """admin_eval.html and its ``job`` block."""

    models: list[str] = field(default_factory=list)
    suites: list[str] = field(default_factory=list)
    job: JobView | None = None
    error: str = ""
    nav: str = "admin"


def clock(seconds: float) -> str:
    """``M:SS`` (``H:MM:SS`` from an hour); ``--:--`` when unknown."""
    if math.isinf(seconds) or math.isnan(seconds):
        return "--:--"
    s = int(round(seconds))
    h, m, s = s // 3600, s % 3600 // 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _summary(job: Job) -> str:
    tally = (job.result or {}).get("tally") or {}
    if not tally:
        return ""
    return (
        f"{tally.get('pairs', 0)} pairs decided ({tally.get('ties', 0)} ties, {tally.get('inconsistent', 0)} "
        f"inconsistent orders counted as ties), {tally.get('parse_failures', 0)} judge replies did not parse, "
        f"{tally.get('judge_failures', 0)} judge failures; cached: {tally.get('answers_cached', 0)} answers, "
        f"{tally.get('verdicts_cached', 0)} verdicts"
    )


def _board(job: Job) -> list[BoardRow]:
    rows = (job.result or {}).get("board") or []
    return [
        BoardRow(
            int(r["rank_ub"]),
            str(r["model"]),
            float(r["rating"]),
            f"+{r['ci_upper'] - r['rating']:.1f}/−{r['rating'] - r['ci_lower']:.1f}",
            int(r["votes"]),
        )
        for r in rows
    ]


def job_view(job: Job, now: float | None = None) -> JobView:
    percent = int(100 * job.done / job.total) if job.total else (100 if not job.running else 0)
    return JobView(
        job.id,
        job.title,
        job.state,
        job.running,
        job.done,
        job.total,
        percent,
        f"{job.rate(now):.1f} steps/s",
        clock(job.eta(now)),
        clock(job.elapsed(now)),
        job.error,
        _summary(job),
        _board(job),
    )


def eval_screen(models: Sequence[str], suites: Sequence[str], job: Job | None, error: str = "") -> EvalScreen:
    return EvalScreen(list(models), list(suites), job_view(job) if job is not None else None, error)
