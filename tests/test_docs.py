"""Docs are tested: every setting, CLI command, route and Dockerfile step is where it should be."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.cli import COMMANDS, build_parser
from app.cli.docs import BEGIN, END, settings_table
from app.server import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_settings_table_is_generated_from_settings() -> None:
    assert README.split(BEGIN)[1].split(END)[0].strip() == settings_table()
    for name in Settings.model_fields:
        assert f"`--{name.replace('_', '-')}`" in README and f"`ARENA_{name.upper()}`" in README


def test_every_cli_command_is_documented() -> None:
    for command in COMMANDS:
        assert f"`arena {command}" in README, command
    for sub in (
        "models add",
        "models remove",
        "models pause",
        "models resume",
        "battles import",
        "battles export",
        "scores import",
    ):
        assert f"arena {sub}" in README, sub
    build_parser()  # builds without conflicts


# A route is documented by a code span naming its exact path, e.g. `POST /battle/{id}/turn`, or
# `GET`/`PATCH /api/v1/admin/models/{id}` (methods before the span), or a bare `/path` for GET.
_SPAN = re.compile(r"((?:`[A-Z]+`/)*)`(?:([A-Z]+) )?(/[^`\s]*)`")
_SKIP_METHODS = {"HEAD", "OPTIONS"}


def documented_routes(text: str) -> set[tuple[str, str]]:
    """(method, path) pairs the text documents; {a\\|b} alternatives read as {action}."""
    found: set[tuple[str, str]] = set()
    for match in _SPAN.finditer(text):
        path = re.sub(r"\{[^}]*\\\|[^}]*\}", "{action}", match.group(3))
        methods = re.findall(r"`([A-Z]+)`", match.group(1)) + [match.group(2) or "GET"]
        found.update((m, path) for m in methods)
    return found


def app_routes(app: Any) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for route in app.routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        path = path.replace("{model_id}", "{id}").replace("{battle_id}", "{id}")
        if path.startswith("/static"):
            continue
        for method in getattr(route, "methods", {"GET"}):
            if method not in _SKIP_METHODS:
                routes.add((method, path))
    return routes


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(Settings(db=tmp_path / "a.db"))
    assert sorted(app_routes(app) - documented_routes(README)) == []


def test_route_check_is_exact() -> None:
    """A longer path does not document its prefix, and a path without its method is not a POST."""
    text = "See `POST /battle/{id}/turn`, `/api/v1/things` and `GET`/`DELETE /x/{id}/{a\\|b}`."
    assert documented_routes(text) == {
        ("POST", "/battle/{id}/turn"),
        ("GET", "/api/v1/things"),
        ("GET", "/x/{id}/{action}"),
        ("DELETE", "/x/{id}/{action}"),
    }
    assert ("POST", "/battle") not in documented_routes(text)
    assert ("GET", "/api/v1/thing") not in documented_routes(text)
    assert ("POST", "/api/v1/things") not in documented_routes(text)


def test_quick_start_is_two_commands() -> None:
    block = README.split("## Quick start")[1].split("```sh")[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make serve", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _make_targets() -> dict[str, str]:
    text = (ROOT / "Makefile").read_text()
    targets: dict[str, str] = {}
    for match in re.finditer(r"^([\w.$()/-]+):[^=\n]*\n((?:\t.*\n)*)", text, re.MULTILINE):
        targets[match.group(1)] = match.group(2)
    return targets


def test_dockerfile_installs_like_the_makefile() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    targets = _make_targets()
    serve_prereqs = re.search(r"^serve: (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()
    runs = re.findall(r"^RUN make (.+?) PYTHON=", docker, re.MULTILINE)
    assert runs == ["install static", "demo-model", "install-gpu static"]
    # The CPU image's build and train stages make exactly what `make serve` does.
    assert runs[0].split() + runs[1].split() == serve_prereqs
    for run in runs:
        for target in run.split():
            assert target in targets, target
    assert "pip install -q -e ." in (ROOT / "Makefile").read_text()
    assert re.search(r"^FROM .* AS cpu$", docker, re.MULTILINE) and re.search(
        r"^FROM .* AS cuda$", docker, re.MULTILINE
    )
    assert 'CMD ["arena", "serve"]' in docker
    assert "docker build --target cpu" in README and "docker run" in README


def dockerfile_stages(text: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """The Dockerfile's stages: name -> (the image it starts FROM, its instructions as (NAME, args)),
    with continued lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, args = line.strip().partition(" ")
        if name.upper() == "FROM":
            base, _, stage = args.partition(" AS ")
            current = []
            stages[stage.strip()] = (base.strip(), current)
        else:
            current.append((name.upper(), " ".join(args.split())))
    return stages


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, args in instructions:
        if name == "ENV":
            found.update(dict(pair.split("=", 1) for pair in args.split()))
    return found


def test_the_images_run_unprivileged_with_only_the_trained_adapter() -> None:
    """Issue 22: the demo model trains in a stage of its own and only its adapter reaches the images;
    issue 19: the images run as a user that is not root."""
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())
    assert {"build", "train", "cpu", "cuda"} <= set(stages)
    train_base, train = stages["train"]
    assert train_base == "build" and ("RUN", "make demo-model PYTHON=python3") in train
    demo_dir = env_of(train)["ARENA_DEMO_MODEL"]
    for name in ("cpu", "cuda"):
        base, steps = stages[name]
        assert base not in stages, f"{name} starts from another stage: it would carry its files"
        users = [args for step, args in steps if step == "USER"]
        assert users and users[-1] not in ("root", "0") and not users[-1].startswith(("root:", "0:")), name
        assert [s for s, _ in steps].index("USER") < [s for s, _ in steps].index("CMD"), name
        assert any(step == "RUN" and "useradd" in args and users[-1] in args for step, args in steps), name
        assert not any("demo-model" in args or "[train]" in args or "torch" in args for _, args in steps), name
        from_train = [args.split()[1:] for step, args in steps if step == "COPY" and "--from=train" in args]
        assert len(from_train) == 1, name
        *sources, dest = from_train[0]
        assert dest.rstrip("/") == demo_dir and env_of(steps)["ARENA_DEMO_MODEL"] == demo_dir, name
        assert sorted(Path(s).name for s in sources) == [".demo-key.json", "adapter.gguf", "export.json"], name
        assert all(Path(s).parent == Path(demo_dir) for s in sources), name
        assert env_of(steps)["ARENA_HOST"] == "0.0.0.0", name
    # Only the CPU image's install comes from the build stage; the train stage's torch does not.
    copies = [args for step, args in stages["cpu"][1] if step == "COPY"]
    assert [c.split()[0] for c in copies] == ["--from=build", "--from=train"]


def test_readme_holds_each_served_doc_page() -> None:
    """The pages the arena serves from app/web/docs/ are README's sections, word for word."""
    from app.web.screens import DOCS, DOCS_DIR

    for name, doc in DOCS.items():
        begin, end = f"<!-- docs:{name}:begin -->\n", f"<!-- docs:{name}:end -->"
        heading = README.split(begin)[0].rsplit("\n## ", 1)[1].split("\n")[0]
        assert heading == doc.title, name
        assert README.split(begin)[1].split(end)[0] == (DOCS_DIR / doc.file).read_text(), name
        assert f"`{doc.url}`" in README
