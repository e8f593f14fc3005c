"""The bundled Gemma presets answer a three-prompt suite over the real server, and the real Gemma
judges it. Its verdicts may be poor; parsing, storage and the figures must hold.

The eval runs in this process (``arena eval``) with both presets registered as remote models at
the server's /v1, so the judge is a remote model too.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.arena.leaderboard import COUNTS_SQL
from app.cli import main
from app.eval.verdicts import parse_pairwise, parse_score
from tests.helpers.server import ArenaServer

pytestmark = pytest.mark.integration

GREEDY, SAMPLED = "gemma-3-270m-greedy", "gemma-3-270m-t0.8"
SUITE = [
    {"id": "math", "category": "math", "turns": ["What is 12 + 30?"], "reference": "42"},
    {"id": "reason", "category": "reasoning", "turns": ["Tom is older than Ann. Who is younger?"], "reference": "Ann"},
    {"id": "write", "category": "writing", "turns": ["Write one sentence about the sea."]},
]


def remote_models(base: str) -> str:
    blocks = []
    for model_id, sampling in ((GREEDY, "temperature = 0.0"), (SAMPLED, "temperature = 0.8, top_p = 0.95")):
        blocks.append(
            f'[[models]]\nid = "{model_id}"\nengine = "remote"\nbase_url = "{base}/v1"\nremote_model = "{model_id}"\n'
            f"context_length = 4096\ndefaults = {{ {sampling}, max_tokens = 48 }}\n"
        )
    return "\n".join(blocks)


def rows(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_gemma_answers_and_judges_a_suite_over_the_real_server(
    arena_server: ArenaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "models.toml").write_text(remote_models(arena_server.base))
    suite = tmp_path / "three.jsonl"
    suite.write_text("".join(json.dumps(q) + "\n" for q in SUITE))
    db = tmp_path / "eval.db"
    common = ["--models-file", str(tmp_path / "models.toml"), "--db", str(db), "--suite", str(suite)]
    common += ["--judge", GREEDY, "--judge-max-tokens", "64", "--format", "json", "--no-progress"]

    assert main(["eval", "pairwise", *common, "--models", SAMPLED, "--baseline", GREEDY]) == 0
    tally = json.loads(capsys.readouterr().out)["tally"]
    assert (tally["answers"], tally["answer_failures"], tally["judge_replies"], tally["judge_failures"]) == (6, 0, 6, 0)
    pairs = tally["pairs"]
    assert 3 - pairs <= tally["parse_failures"] <= 6 - 2 * pairs  # an undecided pair lacks at least one verdict
    answers = rows(db, "SELECT * FROM eval_answers")
    assert len(answers) == 6 and {a["model"] for a in answers} == {GREEDY, SAMPLED}
    greedy = [a for a in answers if a["model"] == GREEDY]  # deterministic, so never empty by chance
    assert all(json.loads(a["answers"])[0]["text"].strip() and a["completion_tokens"] > 0 for a in greedy)
    verdicts = rows(db, "SELECT * FROM eval_verdicts WHERE kind = 'pairwise'")
    assert len(verdicts) == 6
    for v in verdicts:  # what was stored is what the strict parser reads in the raw reply, nothing guessed
        assert (v["verdict"] or None) == parse_pairwise(v["raw"])
    assert sum(v["verdict"] == "" for v in verdicts) == tally["parse_failures"]
    battles = rows(db, "SELECT * FROM battles")
    assert len(battles) == pairs and all(b["mode"] == "judge" and b["voter_hash"] == f"judge:{GREEDY}" for b in battles)
    assert len(rows(db, "SELECT * FROM votes WHERE mode = 'judge'")) == pairs
    assert rows(db, COUNTS_SQL, ("anony", "overall")) == []

    assert main(["eval", "single", *common, "--models", f"{GREEDY},{SAMPLED}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tally"]["answers_cached"] == 6 and result["tally"]["judge_failures"] == 0
    for model in (GREEDY, SAMPLED):
        score = result["scores"][model]
        assert score["n"] + score["parse_failures"] == 3
        assert score["mean"] is None or 1 <= score["mean"] <= 10
    for v in rows(db, "SELECT * FROM eval_verdicts WHERE kind = 'single'"):
        assert v["score"] == parse_score(v["raw"])

    assert main(["eval", "tournament", *common, "--models", f"{GREEDY},{SAMPLED}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tally"]["verdicts_cached"] == 6 and result["tally"]["pairs"] == pairs  # the same pairs, cached
    assert len(result["board"]) == (2 if pairs else 0)
