"""``arena eval`` and ``arena suites`` in-process over a models file of scripted engines: no server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.cli import main

MODELS = """
[[models]]
id = "alpha"
engine = "scripted"
context_length = 100000
script = ["Alpha's answer."]

[[models]]
id = "beta"
engine = "scripted"
context_length = 100000
script = ["Beta's answer."]

[[models]]
id = "judge"
engine = "scripted"
context_length = 100000
script = ["Assistant A is better. [[A>B]]", "B wins [[B>>A]]", "Hard to say."]
"""


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    (tmp_path / "models.toml").write_text(MODELS)
    suite = tmp_path / "three.jsonl"
    suite.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i}?"}) + "\n" for i in range(3)))
    return ["--models-file", str(tmp_path / "models.toml"), "--db", str(tmp_path / "a.db"), "--suite", str(suite)]


def test_eval_pairwise_prints_win_rates_and_the_tally(files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "pairwise", *files, "--models", "alpha", "--baseline", "beta", "--judge", "judge"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("judge judge, suite three: ")
    assert "did not parse" in lines[0] and lines[1].split()[:3] == ["MODEL", "WIN", "RATE"]
    assert lines[2].split()[0] == "alpha"
    assert "pairwise [" in err and "ETA" in err
    assert "12/12" in err  # 3 prompts: 6 answers + 6 judge replies
    # the same command again: everything cached, same figures
    assert (
        main(
            [
                "eval",
                "pairwise",
                *files,
                "--models",
                "alpha",
                "--baseline",
                "beta",
                "--judge",
                "judge",
                "--format",
                "json",
                "--no-progress",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert err == "" and result["tally"]["verdicts_cached"] == 6 and result["tally"]["answers_cached"] == 6
    decided = result["tally"]["pairs"]
    assert decided + result["tally"]["parse_failures"] // 2 <= 3


def test_eval_tournament_and_single(files: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["eval", "tournament", *files, "--models", "alpha,beta", "--judge", "judge", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "RANK (UB)" in out or "no pair was decided" in out
    assert main(["eval", "single", *files, "--models", "alpha,beta", "--judge", "judge", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("judge judge, suite three: 6 grades") and "NOT PARSED" in out
    conn = sqlite3.connect(tmp_path / "a.db")
    try:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM eval_runs WHERE status = 'done' ORDER BY created")]
        assert kinds == ["tournament", "single"]
    finally:
        conn.close()


def test_eval_refuses_what_it_cannot_run(files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "pairwise", *files, "--models", "alpha", "--judge", "judge"]) == 1
    assert "needs --baseline" in capsys.readouterr().err
    assert main(["eval", "single", *files, "--models", "alpha", "--judge", "nobody"]) == 1
    assert "unknown model(s): nobody" in capsys.readouterr().err


def test_suites_list_show_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = ["--suites-dir", str(tmp_path / "suites")]
    assert main(["suites", "list", *folder]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["demo", "11"]
    assert main(["suites", "show", "demo", *folder]) == 0
    assert "demo-02  math" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "prompt": "fine"}\n{"id": 2}\n')
    assert main(["suites", "import", str(bad), *folder]) == 1
    assert f"{bad}:2: turns (or prompt)" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": 1, "prompt": "fine"}\n')
    assert main(["suites", "import", str(good), "--name", "mine", *folder]) == 0
    assert "imported 1 prompts as suite 'mine'" in capsys.readouterr().out
    assert main(["suites", "show", "mine", *folder]) == 0
