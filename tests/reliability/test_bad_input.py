"""Bad input: hypothesis fuzzes the JSON APIs (/v1, /api/v1, the admin API), the htmx form posts
and the battle import file; hand-picked hostile bodies each get a clear 4xx; the server keeps
serving. ``bench/reliability.py`` runs the fuzz tests with many more cases."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from app.store import migrations, transfer
from tests.helpers.fuzz import ADMIN, EXAMPLES, JSON_ROUTES, NASTY, SQL, ids, json_values, record

FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True
)
ROUTE = st.sampled_from(range(len(JSON_ROUTES)))


@pytest.fixture
def sync_client(make_app) -> Iterator[TestClient[Any]]:
    app = make_app(
        {"alpha": ["Hi."], "beta": ["Yo."], "gamma": ["Hm."]},
        admin_token=ADMIN,
        battle_rate="100000/1",
        vote_rate="100000/1",
    )
    with TestClient(app, timeout=30) as client:
        yield client


def quoted(path_id: str) -> str:
    """A path segment, percent-encoded (lone surrogates become invalid UTF-8 on the wire)."""
    return quote(path_id.encode("utf-8", "surrogatepass"), safe="")


def still_serving(client: TestClient[Any]) -> None:
    r = client.post("/api/v1/battles", json={"prompt": "Still there?", "wait": True})
    assert r.status_code == 201, r.text
    assert client.post(
        "/v1/chat/completions", json={"model": "alpha", "messages": [{"role": "user", "content": "x"}]}
    ).is_success


def no_5xx(r: Any) -> None:
    record(r.status_code)
    assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"


def test_fuzzed_json_bodies_and_ids_never_get_a_5xx(sync_client) -> None:
    battle = sync_client.post("/api/v1/battles", json={"prompt": "Hi", "wait": True}).json()["id"]
    auth = {"authorization": f"Bearer {ADMIN}"}

    @FUZZ
    @given(route=ROUTE, body=st.data(), path_id=ids | st.just(battle) | st.just("gamma"))  # admin may remove gamma
    def case(route: int, body: st.DataObject, path_id: str) -> None:
        method, path, strategy = JSON_ROUTES[route]
        payload = body.draw(strategy)
        url = path.replace("{id}", quoted(path_id))
        content = None if payload is None else json.dumps(payload)
        headers = {**auth, "content-type": "application/json"}
        no_5xx(sync_client.request(method, url, content=content, headers=headers))

    case()
    still_serving(sync_client)


def test_fuzzed_htmx_form_posts_never_get_a_5xx(sync_client) -> None:
    sync_client.get("/")
    headers = {"x-csrftoken": sync_client.cookies["csrftoken"], "hx-request": "true"}
    battle = sync_client.post("/api/v1/battles", json={"prompt": "Hi", "wait": True}).json()["id"]
    text = st.sampled_from(NASTY) | st.text(max_size=50)
    form = st.dictionaries(
        st.sampled_from(["prompt", "mode", "models", "winner", "kind", "message_id", "token"]), text, max_size=4
    )
    paths = ["/battle", "/battle/{id}/turn", "/battle/{id}/vote", "/battle/{id}/feedback", "/battle/{id}/regenerate"]

    @FUZZ
    @given(path=st.sampled_from(paths), fields=form, path_id=ids | st.just(battle))
    def case(path: str, fields: dict[str, str], path_id: str) -> None:
        body = "&".join(f"{k}={quoted(v)}" for k, v in fields.items())
        form_headers = {**headers, "content-type": "application/x-www-form-urlencoded"}
        no_5xx(sync_client.post(path.replace("{id}", quoted(path_id)), content=body, headers=form_headers))

    case()
    still_serving(sync_client)


TEXT = st.sampled_from(NASTY) | st.text(max_size=30)
TURN = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "x"]) | TEXT, "content": TEXT | json_values}
)
ROW = st.fixed_dictionaries(
    {
        "model_a": TEXT,
        "model_b": TEXT,
        "winner": st.sampled_from(["model_a", "model_b", "tie", "tie (bothbad)"]) | TEXT,
        "conversation_a": st.lists(TURN, max_size=4),
        "conversation_b": st.lists(TURN, max_size=4),
    },
    optional={"question_id": json_values, "tstamp": json_values, "turn": json_values, "anony": json_values},
)


def test_fuzzed_battle_import_files_are_refused_cleanly_or_imported(tmp_path: Path) -> None:
    db = tmp_path / "arena.db"
    migrations.apply(str(db))

    @FUZZ
    @given(rows=st.lists(ROW | json_values, max_size=3), jsonl=st.booleans(), junk=st.none() | st.binary(max_size=40))
    def case(rows: list[Any], jsonl: bool, junk: bytes | None) -> None:
        source = tmp_path / ("battles.jsonl" if jsonl else "battles.json")
        if junk is not None:
            source.write_bytes(junk)
        elif jsonl:
            source.write_text("\n".join(json.dumps(r) for r in rows))
        else:
            source.write_text(json.dumps(rows))
        report = transfer.Report()
        try:
            valid = transfer.valid_rows(source, report)
        except transfer.TransferError:
            record(400)
            return
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            transfer.import_rows(conn, valid, report)  # rows that passed the check import without error
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        record(200)

    case()


# -- hand-picked hostile bodies ----------------------------------------------------------------

CHAT_URL = "/v1/chat/completions"


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "alpha", "messages": [{"role": "user", "content": "Hi"}], **fields}


HOSTILE: list[tuple[str, str, bytes, str]] = [
    ("deep JSON", CHAT_URL, b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("deep JSON battle", "/api/v1/battles", b'{"prompt": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json"),
    ("10 MB body", CHAT_URL, b'{"model": "alpha", "pad": "' + b"x" * 10_000_000 + b'"}', "application/json"),
    ("10 MB battle", "/api/v1/battles", b'{"prompt": "' + b"x" * 10_000_000 + b'"}', "application/json"),
    (
        "invalid UTF-8",
        CHAT_URL,
        b'{"model": "alpha", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        "application/json",
    ),
    ("invalid UTF-8 battle", "/api/v1/battles", b'{"prompt": "\xc3\x28"}', "application/json"),
    ("NUL in prompt", "/api/v1/battles", json.dumps({"prompt": "a\x00b"}).encode(), "application/json"),
    ("NUL in model", CHAT_URL, json.dumps(chat(model="al\x00pha")).encode(), "application/json"),
    ("huge max_tokens", CHAT_URL, json.dumps(chat(max_tokens=10**30)).encode(), "application/json"),
    ("huge max_tokens 2**63", CHAT_URL, json.dumps(chat(max_tokens=2**63)).encode(), "application/json"),
    ("negative max_tokens", CHAT_URL, json.dumps(chat(max_tokens=-5)).encode(), "application/json"),
    ("negative temperature", CHAT_URL, json.dumps(chat(temperature=-1)).encode(), "application/json"),
    ("negative n", CHAT_URL, json.dumps(chat(n=-1)).encode(), "application/json"),
    ("NaN", CHAT_URL, b'{"model": "alpha", "messages": [], "temperature": NaN}', "application/json"),
    ("not JSON", "/api/v1/battles", b"{", "application/json"),
    ("admin deep JSON", "/api/v1/admin/models", b"[" * 50_000 + b"]" * 50_000, "application/json"),
    (
        "admin negative",
        "/api/v1/admin/models",
        json.dumps({"id": "m", "engine": "scripted", "context_length": -1}).encode(),
        "application/json",
    ),
]


@pytest.mark.parametrize(("name", "url", "body", "media"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_a_clear_4xx(sync_client, name: str, url: str, body: bytes, media: str) -> None:
    r = sync_client.post(url, content=body, headers={"content-type": media, "authorization": f"Bearer {ADMIN}"})
    assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text[:200]}"
    error = r.json()["error"]
    assert error["message"] and len(error["message"]) < 500  # clear, and not an echo of the body
    still_serving(sync_client)


def test_sql_injection_strings_in_every_parameter_change_nothing(sync_client, make_app) -> None:
    db = sync_client.app.state.settings.db
    battle = sync_client.post("/api/v1/battles", json={"prompt": "Hi", "wait": True}).json()["id"]

    def snapshot() -> dict[str, Any]:
        conn = sqlite3.connect(db)
        try:
            tables = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
            counts = {
                t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t, _ in tables if _ and "TABLE" in _
            }
            return {"schema": tables, "counts": counts}
        finally:
            conn.close()

    before = snapshot()
    auth = {"authorization": f"Bearer {ADMIN}"}
    for s in SQL:
        q = quoted(s)
        for r in [
            sync_client.get(f"/api/v1/battles/{q}"),
            sync_client.get(f"/battle/{q}"),
            sync_client.post(f"/api/v1/battles/{q}/vote", json={"winner": "tie"}),
            sync_client.post(f"/api/v1/battles/{battle}/vote", json={"winner": s}),
            sync_client.post("/api/v1/battles", json={"prompt": "x", "mode": "named", "models": [s, "alpha"]}),
            sync_client.post("/v1/chat/completions", json=chat(model=s)),
            sync_client.get("/api/v1/leaderboard", params={"category": s, "mode": s, "voter": s}),
            sync_client.get("/leaderboard", params={"category": s, "mode": s}),
            sync_client.get(f"/api/v1/admin/models/{q}", headers=auth),
            sync_client.patch(f"/api/v1/admin/models/{q}", json={"name": s}, headers=auth),
            sync_client.post(f"/api/v1/admin/models/{q}/pause", headers=auth),
        ]:
            assert r.status_code < 500, f"{r.request.url}: {r.status_code} {r.text[:200]}"
    assert snapshot() == before
    assert sync_client.post(f"/api/v1/battles/{battle}/vote", json={"winner": "tie"}).status_code == 200


@pytest.mark.parametrize(
    "weights",
    ["../../../../etc/passwd", "/etc/passwd", "models/../../secret.gguf", "..\\..\\boot.ini", "%2e%2e/x.gguf"],
)
def test_path_traversal_in_model_paths_is_refused(sync_client, weights: str) -> None:
    spec = {"id": "evil", "engine": "llama.cpp", "weights": weights}
    r = sync_client.post("/api/v1/admin/models", json=spec, headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 400, r.text
    assert "evil" not in [m["id"] for m in sync_client.get("/v1/models").json()["data"]]
