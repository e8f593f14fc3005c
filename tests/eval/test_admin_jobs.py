"""The /admin eval job: a tournament in the background with progress (done/total, throughput,
ETA) polled by htmx, one job at a time, cancelled from the page and at shutdown."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from app.errors import Conflict, Invalid
from app.eval.jobs import Job, Jobs, tournament
from app.server import create_app
from app.settings import Settings
from app.web.eval_screen import clock, job_view
from tests.eval.human_battles import MODELS_TOML, ReadingJudge
from tests.helpers.arena import Client, csrf, db_rows, parse_html, serve

TOKEN = "admin-token-for-eval"
PLAYERS = ["model-x1", "model-y2", "model-z3"]


def test_progress_rate_and_eta() -> None:
    job = Job("j1", "tournament", "t", started=100.0)
    assert (job.rate(101.0), job.eta(101.0)) == (0.0, math.inf)
    job.report(5, 20, now=102.0)  # the first report: cached work, done at once; the rate counts from here
    job.report(14, 20, now=103.0)
    # 10 steps since the first report over 2 s: 5/s; 6 left: 1.2 s
    assert job.rate(104.0) == pytest.approx(5.0) and job.eta(104.0) == pytest.approx(1.2)
    view = job_view(job, now=104.0)
    assert (view.done, view.total, view.percent, view.rate, view.eta, view.elapsed) == (
        14,
        20,
        70,
        "5.0 steps/s",
        "0:01",
        "0:04",
    )
    assert (clock(3725.0), clock(math.inf)) == ("1:02:05", "--:--")


async def test_one_job_at_a_time_and_a_failure_is_kept() -> None:
    jobs = Jobs()
    gate = asyncio.Event()

    async def slow(progress: Any) -> dict[str, Any]:
        progress(0, 1)
        await gate.wait()
        return {"ok": True}

    first = jobs.start("x", "first", slow)
    with pytest.raises(Conflict):
        jobs.start("x", "second", slow)
    gate.set()
    await asyncio.sleep(0.01)
    assert (first.state, first.result) == ("done", {"ok": True})

    async def broken(progress: Any) -> dict[str, Any]:
        raise RuntimeError("judge exploded")

    failed = jobs.start("x", "third", broken)  # the last one finished: a new one may start
    await asyncio.sleep(0.01)
    assert (failed.state, failed.error, jobs.current) == ("failed", "judge exploded", failed)
    blocked = jobs.start("x", "fourth", slow)
    gate.clear()
    await jobs.close()
    assert blocked.state == "cancelled" and blocked.finished is not None


def test_a_tournament_needs_two_models_and_a_judge() -> None:
    with pytest.raises(Invalid):
        tournament(None, None, ["a", "a"], "j")  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        tournament(None, None, ["a", "b"], "")  # type: ignore[arg-type]


def _app(tmp_path: Path) -> Any:
    models = tmp_path / "models.toml"
    models.write_text(MODELS_TOML)
    suites = tmp_path / "suites"
    suites.mkdir()
    lines = [{"id": f"p{i}", "prompt": f"Explain thing {i}."} for i in range(3)]
    (suites / "mini.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return create_app(
        Settings(models=models, db=tmp_path / "arena.db", admin_token=TOKEN, suites_dir=suites)  # type: ignore[arg-type]
    )


async def _login(c: Client) -> dict[str, str]:
    headers = await csrf(c)
    assert (await c.post("/admin/login", data={"token": TOKEN}, headers=headers)).status_code == 200
    return headers


async def _start(c: Client, headers: dict[str, str], models: list[str] = PLAYERS) -> Any:
    form = {"models": models, "judge": "judge", "suite": "mini"}
    r = await c.post("/admin/eval/tournament", data=form, headers=headers)
    assert r.status_code == 200, r.text
    return parse_html(r.text).one("section", id_="job")


async def _field(c: Client, name: str) -> str:
    block = parse_html((await c.get("/admin/eval/job")).text)
    return block.one("span", data_field=name).text()


async def test_a_tournament_from_the_admin_page(tmp_path: Path) -> None:
    async with serve(_app(tmp_path)) as c:
        assert (await c.get("/admin/eval", follow_redirects=False)).status_code in (302, 303)  # logged out
        assert (await c.get("/admin/eval/job")).status_code == 401
        headers = await _login(c)
        page = parse_html((await c.get("/admin/eval")).text)
        assert [i.attrs["value"] for i in page.all("input", name="models")] == [*PLAYERS, "judge"]
        assert "mini" in [o.attrs["value"] for o in page.one("select", name="suite").all("option")]
        assert page.one("section", id_="job").one("p", cls="empty")
        judge = ReadingJudge(max_context=8192, delay=0.02)
        c.app.state.models.get("judge").engine = judge
        running = await _start(c, headers)
        # running: polled every second, with a cancel button and progress
        assert running.attrs["hx-trigger"] == "every 1s" and running.attrs["hx-get"] == "/admin/eval/job"
        assert running.one("p", cls="job-state").attrs["data-state"] == "running"
        assert running.one("button").attrs["hx-post"] == "/admin/eval/job/cancel"
        again = await _start(c, headers)
        assert "already running" in again.one("div", cls="flash").text()
        job = c.app.state.jobs.current
        await asyncio.wait_for(_until(lambda: not job.running), 30)
        done = parse_html((await c.get("/admin/eval/job")).text).one("section", id_="job")
        assert "hx-trigger" not in done.attrs  # polling stops
        assert done.one("p", cls="job-state").attrs["data-state"] == "done"
        # 3 prompts x (3 answers + 3 pairs x 2 orders) = 27 steps
        assert await _field(c, "steps") == "27/27" and await _field(c, "eta") == "0:00"
        assert [tr.attrs["data-model"] for tr in done.all("tr") if "data-model" in tr.attrs] == PLAYERS
        assert "9 pairs decided" in done.one("p", cls="job-summary").text()
        assert len(judge.requests) == 18
        runs = db_rows(c.app, "SELECT kind, status, done, total FROM eval_runs")
        assert [tuple(r) for r in runs] == [("tournament", "done", 27, 27)]


async def test_bad_forms_say_what_is_wrong(tmp_path: Path) -> None:
    async with serve(_app(tmp_path)) as c:
        headers = await _login(c)
        one = await _start(c, headers, ["model-x1"])
        assert "at least two models" in one.one("div", cls="flash").text()
        r = await c.post(
            "/admin/eval/tournament", data={"models": PLAYERS, "judge": "nobody", "suite": "mini"}, headers=headers
        )
        assert "No model nobody" in parse_html(r.text).one("div", cls="flash").text()
        r = await c.post(
            "/admin/eval/tournament", data={"models": PLAYERS, "judge": "judge", "suite": "/etc/x"}, headers=headers
        )
        assert "Pick a suite" in parse_html(r.text).one("div", cls="flash").text()
        assert c.app.state.jobs.current is None


async def test_cancel_from_the_page_and_at_shutdown(tmp_path: Path) -> None:
    async with serve(_app(tmp_path)) as c:
        headers = await _login(c)
        c.app.state.models.get("judge").engine = ReadingJudge(max_context=8192, delay=0.5)
        await _start(c, headers)
        await asyncio.sleep(0.1)
        r = await c.post("/admin/eval/job/cancel", headers=headers)
        block = parse_html(r.text).one("section", id_="job")
        assert block.one("p", cls="job-state").attrs["data-state"] == "cancelled"
        await _start(c, headers)  # another may start now
        job = c.app.state.jobs.current
        await asyncio.wait_for(_until(lambda: job.done > 3), 30)  # well into its work
        app = c.app
    assert job.state == "cancelled"  # the lifespan stopped it
    statuses = [r["status"] for r in db_rows(app, "SELECT status FROM eval_runs ORDER BY created")]
    assert statuses == ["interrupted", "interrupted"]


async def _until(check: Any) -> None:
    while not check():
        await asyncio.sleep(0.02)
