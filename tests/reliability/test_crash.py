"""Crash safety: SIGKILL the real server (scripted engines) and restart it on the same database.

The longer version (more kills, more clients) is ``bench/reliability.py``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.arena import parse_html
from tests.helpers.crash import OPEN_RATES, kill_under_votes, models_file
from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

LONG = " ".join(f"word{i}" for i in range(60))


def test_every_acknowledged_vote_survives_five_kills(tmp_path: Path) -> None:
    report = kill_under_votes(tmp_path, kills=5, clients=3)
    assert report.kills == 5
    assert len(report.acknowledged) > 2 * report.kills, "the traffic got few votes through"
    assert report.lost == set()
    assert report.stored == report.distinct  # no duplicates
    assert report.integrity == "ok"
    assert report.refused == 0, report.refusals


def _slow_server(tmp: Path) -> ArenaServer:
    plan = json.dumps({m: {"kind": "slow", "delay": 0.05} for m in ("alpha", "beta")})
    models = models_file(tmp, {"alpha": [LONG], "beta": [LONG]})
    launcher = ("-m", "tests.helpers.faults", plan)
    return ArenaServer(tmp, "--models", str(models), *OPEN_RATES, launcher=launcher)


def _wait_streaming(server: ArenaServer, battle_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = httpx.get(f"{server.base}/api/v1/battles/{battle_id}").json()
        if state["status"] == "generating":
            return
        time.sleep(0.05)
    raise AssertionError("the battle never started generating")


def test_a_battle_killed_mid_stream_is_interrupted_after_the_restart(tmp_path: Path) -> None:
    server = _slow_server(tmp_path)
    try:
        done = httpx.post(f"{server.base}/api/v1/battles", json={"prompt": "First", "wait": True}, timeout=30)
        finished_id = done.json()["id"]
        r = httpx.post(f"{server.base}/api/v1/battles", json={"prompt": "Second"}, timeout=10)
        streaming_id = r.json()["id"]
        _wait_streaming(server, streaming_id)
    finally:
        server.proc.kill()
        server.proc.wait(10)

    server = ArenaServer(tmp_path, "--models", str(models_file(tmp_path)), *OPEN_RATES)
    try:
        state = httpx.get(f"{server.base}/api/v1/battles/{streaming_id}").json()
        assert state["status"] == "interrupted"
        vote = httpx.post(f"{server.base}/api/v1/battles/{streaming_id}/vote", json={"winner": "tie"})
        assert vote.status_code == 409
        assert "interrupted" in vote.json()["error"]["message"]
        turn = httpx.post(f"{server.base}/api/v1/battles/{streaming_id}/messages", json={"prompt": "More"})
        assert turn.status_code == 409

        page = httpx.get(f"{server.base}/battle/{streaming_id}")
        assert page.status_code == 200
        notice = parse_html(page.text).one(cls="interrupted")
        assert "interrupted when the server restarted" in notice.text()
        assert not parse_html(page.text).all("button", cls="vote-button")

        # A battle whose answers were all stored before the kill is not interrupted: it still takes a vote.
        assert httpx.get(f"{server.base}/api/v1/battles/{finished_id}").json()["status"] == "open"
        ok = httpx.post(f"{server.base}/api/v1/battles/{finished_id}/vote", json={"winner": "model_a"})
        assert ok.status_code == 200, ok.text
    finally:
        server.stop()
    conn = sqlite3.connect(tmp_path / "arena.db")
    try:
        status = dict(conn.execute("SELECT id, status FROM battles").fetchall())
        assert status == {finished_id: "voted", streaming_id: "interrupted"}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
