"""Suites (MT-bench's question.jsonl as is, line-numbered errors, the bundled demo), the judge
templates (one-pass filling, user folders) and the strict verdict parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.eval.suites import SuiteError, available, import_suite, load_suite, parse_suite
from app.eval.templates import TemplateError, load_template, render_pairwise, uses_reference
from app.eval.verdicts import combine, parse_pairwise, parse_score, swapped

MT_BENCH = [  # two lines of FastChat's data/mt_bench/question.jsonl, verbatim shape
    {"question_id": 81, "category": "writing", "turns": ["Compose an engaging travel blog post.", "Rewrite it."]},
    {
        "question_id": 111,
        "category": "math",
        "turns": ["The vertices of a triangle are at points (0, 0), (-1, 1), and (3, 3). What is its area?", "Circle?"],
        "reference": ["Area is 3", "5pi"],
    },
]


def test_mt_bench_question_jsonl_reads_as_is(tmp_path: Path) -> None:
    path = tmp_path / "question.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in MT_BENCH))
    suite = load_suite(path, tmp_path / "none")
    assert suite.name == "question" and [p.id for p in suite.prompts] == ["81", "111"]
    math = suite.prompts[1]
    assert math.category == "math" and len(math.turns) == 2 and math.reference == ("Area is 3", "5pi")
    assert uses_reference(math.category, math.reference) and not uses_reference("writing", ("x",))


def test_bad_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    text = "\n".join(
        [
            '{"id": "a", "prompt": "ok"}',
            "not json",
            '{"prompt": "no id"}',
            '{"id": "b", "turns": []}',
            "",
            '{"id": "a", "prompt": "again"}',
            '{"id": "c", "turns": ["x"], "prompt": "y"}',
        ]
    )
    with pytest.raises(SuiteError) as info:
        parse_suite(text, "s", "s.jsonl")
    lines = str(info.value).splitlines()
    assert [line.split(":")[1] for line in lines] == ["2", "3", "4", "6", "7"]
    assert "duplicate id 'a' (first on line 1)" in lines[3]
    with pytest.raises(SuiteError, match="no prompts"):
        parse_suite("\n\n", "s", "s.jsonl")


def test_bundled_demo_and_import(tmp_path: Path) -> None:
    demo = load_suite("demo", tmp_path)
    assert len(demo.prompts) >= 10 and any(len(p.turns) == 2 for p in demo.prompts)
    for category in ("math", "reasoning", "coding"):
        assert any(p.category == category and p.reference for p in demo.prompts), category
    source = tmp_path / "mine.jsonl"
    source.write_text('{"id": 1, "prompt": "Hello?"}\n')
    folder = tmp_path / "suites"
    assert import_suite(source, folder, "hello").source == str(folder / "hello.jsonl")
    assert available(folder) == {"demo": "bundled:demo", "hello": str(folder / "hello.jsonl")}
    assert load_suite("hello", folder).prompts[0].turns == ("Hello?",)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    with pytest.raises(SuiteError, match="bad.jsonl:1"):
        import_suite(bad, folder)
    assert not (folder / "bad.jsonl").exists()
    with pytest.raises(SuiteError, match="no suite 'nope'"):
        load_suite("nope", folder)


def test_templates_fill_in_one_pass_and_user_folders_override(tmp_path: Path) -> None:
    template = load_template("pairwise")
    text = render_pairwise(template, ["Q?"], ["I say {conversation_b} and {reference}"], ["B's answer"])
    assert "I say {conversation_b} and {reference}" in text  # an answer's braces stay as written
    assert text.count("B's answer") == 1 and "### Assistant A:" in text and "### Assistant B:" in text
    (tmp_path / "pairwise.txt").write_text("Compare {conversation_a} with {conversation_b}. [[A>B]]?")
    mine = load_template("pairwise", tmp_path)
    assert mine.source == str(tmp_path / "pairwise.txt") and mine.sha256 != template.sha256
    assert load_template("single", tmp_path).source == "bundled:single"
    (tmp_path / "single.txt").write_text("no placeholder")
    with pytest.raises(TemplateError, match="lacks"):
        load_template("single", tmp_path)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("My final verdict is: [[A>B]]", "A>B"),
        ("[[B>>A]]", "B>>A"),
        ("[[ A=B ]]", "A=B"),
        ("[[A>B]] ... so again [[A>B]]", "A>B"),
        ("[[A>B]] or maybe [[B>A]]", None),
        ("A>B", None),
        ("[[C]]", None),
        ("", None),
        ("[A>B]", None),
    ],
)
def test_pairwise_verdicts_parse_strictly(reply: str, verdict: str | None) -> None:
    assert parse_pairwise(reply) == verdict


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Rating: [[7]]", 7.0),
        ("[[9.5]]", 9.5),
        ("[[11]]", None),
        ("[[0]]", None),
        ("[[7]] [[8]]", None),
        ("7/10", None),
    ],
)
def test_scores_parse_strictly(reply: str, score: float | None) -> None:
    assert parse_score(reply) == score


def test_both_orders_combine() -> None:
    assert swapped("A>>B") == "B>>A" and swapped("A=B") == "A=B" and swapped("B>A") == "A>B"
    assert combine("A>B", "B>>A") == "model_a"  # X won as A, and as B
    assert combine("B>A", "A>B") == "model_b"
    assert combine("A>B", "A>B") == "tie"  # the judge picked whoever came first: inconsistent
    assert combine("A=B", "A=B") == "tie" and combine("A>B", "A=B") == "tie"
    assert combine(None, "A>B") is None and combine("A>B", None) is None


def test_the_demo_suite_and_templates_ship_with_the_package() -> None:
    """Every file under app/eval/suites and app/eval/templates matches the package data globs."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["app"]
    shipped = [
        p.relative_to(root / "app").as_posix()
        for d in ("suites", "templates")
        for p in (root / "app" / "eval" / d).iterdir()
    ]
    assert shipped and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in shipped), (shipped, globs)


@pytest.mark.parametrize("name", ["my suite", "50%", ".hidden", "a/b", "naïve"])
def test_a_suite_name_is_letters_digits_dot_dash_underscore(tmp_path: Path, name: str) -> None:
    source = tmp_path / "ok.jsonl"
    source.write_text('{"id": 1, "prompt": "Hello?"}\n')
    with pytest.raises(SuiteError, match="bad suite name"):
        import_suite(source, tmp_path / "suites", name)
    assert not (tmp_path / "suites").exists() or not list((tmp_path / "suites").iterdir())
    with pytest.raises(SuiteError, match="bad suite name"):
        parse_suite('{"id": 1, "prompt": "Hello?"}', name, "x")
    spaced = tmp_path / "my suite.jsonl"
    spaced.write_text('{"id": 1, "prompt": "Hello?"}\n')
    with pytest.raises(SuiteError, match="bad suite name 'my suite'"):
        load_suite(spaced, tmp_path)
    assert import_suite(source, tmp_path / "suites", "v1.2_mt-bench").name == "v1.2_mt-bench"
