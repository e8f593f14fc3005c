"""A run killed with SIGKILL mid-way continues where it stopped when started again: the stored
pairs are not judged again, nothing is stored twice, and the run finishes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.eval.killable import MODELS, PROMPTS

ROOT = Path(__file__).resolve().parents[2]
PAIRS = PROMPTS * len(MODELS)


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the tables are not there yet
        return 0
    finally:
        conn.close()


def test_a_killed_run_resumes_without_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    cmd = [sys.executable, "-m", "tests.eval.killable", str(db)]
    log = tmp_path / "killed.log"
    with (
        log.open("w") as err,
        subprocess.Popen([*cmd, "0.05"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err) as proc,
    ):
        deadline = time.monotonic() + 60
        while count(db, "SELECT COUNT(*) FROM battles") < 4:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the run stored no battle in 60 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    stored = count(db, "SELECT COUNT(*) FROM battles")
    answered = count(db, "SELECT COUNT(*) FROM eval_answers")
    assert 4 <= stored < PAIRS
    assert count(db, "SELECT COUNT(*) FROM eval_runs WHERE status = 'running'") == 1  # it never got to say

    done = subprocess.run([*cmd, "0"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result["judge_requests"] == 2 * (PAIRS - stored)  # only the pairs not stored yet
    assert result["answer_requests"] == PROMPTS * (len(MODELS) + 1) - answered  # only the answers not stored yet
    assert result["tally"]["verdicts_cached"] == 2 * stored and result["tally"]["pairs"] == PAIRS
    assert result["win_rates"]["alpha"]["wins"] == PROMPTS and result["win_rates"]["gamma"]["wins"] == PROMPTS
    assert count(db, "SELECT COUNT(*) FROM battles") == PAIRS
    assert count(db, "SELECT COUNT(*) FROM votes") == PAIRS
    assert count(db, "SELECT COUNT(DISTINCT battle_id) FROM votes") == PAIRS
    assert count(db, "SELECT SUM(wins_a + wins_b + ties) FROM pair_counts WHERE category = 'overall'") == PAIRS
    assert count(db, "SELECT COUNT(*) FROM eval_verdicts") == 2 * PAIRS
    assert count(db, "SELECT COUNT(*) FROM eval_answers") == PROMPTS * (len(MODELS) + 1)
    assert count(db, "SELECT COUNT(*) FROM messages WHERE role = 'assistant'") == 2 * PAIRS
    assert count(db, "SELECT COUNT(*) FROM eval_runs WHERE status = 'done' AND done = total") == 1
