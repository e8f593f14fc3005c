"""Issue 19, item 9: a disk that fills up or is read-only, under the real `arena serve`.

A write the disk refuses is a 507 (full) or 503 with a message, never a 500; ``/ready`` says
not ready while writes fail and ready again once they work; reads go on. A database that cannot
be written at start-up is one line on stderr, before "Arena serving on" (it was that line, then
a 59-line traceback). The disk is a small tmpfs where the test may mount one (root), else the
server's RLIMIT_FSIZE (tests/helpers/disk.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.store import migrations
from tests.helpers.crash import models_file
from tests.helpers.disk import kinds, small_disk
from tests.helpers.server import ROOT, ArenaServer, free_port

pytestmark = pytest.mark.integration

KINDS = kinds()
PROMPT = "x" * 7000  # each battle needs fresh room on the disk


def _ready(client: httpx.Client) -> httpx.Response:
    return client.get("/ready")


@pytest.mark.parametrize("kind", KINDS)
def test_a_full_disk_is_refused_and_not_ready(tmp_path: Path, kind: str) -> None:
    with small_disk(kind) as disk:
        server = ArenaServer(tmp_path, "--models", str(models_file(tmp_path)), "--db", str(disk.db))
        disk.pid = server.proc.pid
        try:
            with httpx.Client(base_url=server.base, timeout=30) as c:
                battle = c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
                assert battle.status_code == 201
                assert c.post(f"/api/v1/battles/{battle.json()['id']}/vote", json={"winner": "tie"}).status_code == 200

                disk.fill()
                statuses = []
                for i in range(80):
                    r = c.post("/api/v1/battles", json={"prompt": f"{i} {PROMPT}", "wait": True})
                    statuses.append(r.status_code)
                    if r.status_code != 201:
                        break
                assert statuses[-1] in (503, 507) and 500 not in statuses, statuses
                if kind == "tmpfs":  # a real ENOSPC: SQLite says the disk is full
                    assert statuses[-1] == 507 and r.json()["error"]["code"] == "storage_full"
                assert "cannot save" in r.json()["error"]["message"] and int(r.headers["retry-after"]) > 0
                vote = c.post(f"/api/v1/battles/{battle.json()['id']}/vote", json={"winner": "tie"})
                assert vote.status_code != 500
                ready = _ready(c)
                assert ready.status_code == 503 and ready.json()["store"]["writable"] is False
                assert c.get("/health").status_code == 200  # alive
                assert c.get("/api/v1/leaderboard").status_code == 200  # reads go on

                disk.free()
                for _ in range(20):  # each /ready probes with a write until one works
                    if (ready := _ready(c)).status_code == 200:
                        break
                    time.sleep(0.2)
                assert ready.status_code == 200 and ready.json()["store"] == {"writable": True, "error": None}
                assert c.post("/api/v1/battles", json={"prompt": "Back?", "wait": True}).status_code == 201
        finally:
            server.stop()


def _serve(tmp_path: Path, db: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")} | {"ARENA_DEMO_MODEL": ""}
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(free_port()), "--models", str(models_file(tmp_path))]
    return subprocess.run(
        [*cmd, "--db", str(db)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("how", ["read-only", "no folder"])
def test_an_unwritable_database_at_start_is_one_line(tmp_path: Path, how: str) -> None:
    with small_disk(KINDS[0]) as disk:  # root ignores file modes: a read-only mount where it can
        db = disk.db if how == "read-only" else tmp_path / "missing" / "arena.db"
        if how == "read-only":
            migrations.apply(str(db))
            disk.read_only()
        done = _serve(tmp_path, db)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output
    assert len(output.splitlines()) == 1, output
    assert output.startswith(f"arena: cannot write the database {db}")
    assert "Arena serving on" not in output
