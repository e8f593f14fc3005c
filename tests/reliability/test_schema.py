"""The OpenAPI schema at ``/schema`` is complete for /v1, /api/v1 and the admin API, and
schemathesis, driven by it against the real server, finds no 5xx. ``bench/reliability.py`` runs
the same with over a thousand cases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from tests.helpers import schema_fuzz
from tests.helpers.crash import OPEN_RATES
from tests.helpers.server import ArenaServer, scripted_models_toml

ADMIN = "schema-admin-token"
BODIES = {
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/api/v1/battles"),
    ("POST", "/api/v1/battles/{battle_id}/messages"),
    ("POST", "/api/v1/battles/{battle_id}/vote"),
    ("POST", "/api/v1/admin/models"),
    ("PATCH", "/api/v1/admin/models/{model_id}"),
}


def api_routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        if re.match(schema_fuzz.API, route.path):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            found |= {(m, path) for m in route.methods if m not in ("HEAD", "OPTIONS")}
    return found


def test_schema_covers_every_api_route_and_body(make_app) -> None:
    app = make_app()
    with TestClient(app) as client:
        r = client.get("/schema")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
        schema = r.json()
    assert schema["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, item in schema["paths"].items() for m in item if m != "parameters"}
    routes = api_routes(app)
    assert len(routes) >= 14 and routes <= documented, sorted(routes - documented)
    with_body = {(m.upper(), p) for p, item in schema["paths"].items() for m, op in item.items() if "requestBody" in op}
    assert with_body >= BODIES, sorted(BODIES - with_body)
    chat = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "messages"} <= set(chat["required"]) and "$ref" not in str(chat)  # self-contained
    spec = schema["paths"]["/api/v1/admin/models"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert spec["required"] == ["id"] and "metadata" in spec["properties"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("schema")
    models = tmp / "models.toml"
    models.write_text(scripted_models_toml({"alpha": ["Hi."], "beta": ["Yo."], "gamma": ["Hm."]}))
    server = ArenaServer(Path(tmp), "--models", str(models), "--admin-token", ADMIN, *OPEN_RATES)
    yield server
    server.stop()


@pytest.mark.integration
def test_schemathesis_finds_no_5xx(server: ArenaServer) -> None:
    battle = httpx.post(f"{server.base}/api/v1/battles", json={"prompt": "Hi", "wait": True}, timeout=30)
    assert battle.status_code == 201, battle.text
    known = {"battle_id": battle.json()["id"], "model_id": "gamma"}  # admin cases may edit or remove gamma
    result = schema_fuzz.run(server.base, 3, {"authorization": f"Bearer {ADMIN}"}, known)
    assert len(result.operations) >= 14, result.operations
    assert result.cases >= 50, result.statuses
    assert result.server_errors == [], result.server_errors[:10]
    assert result.count(2) > 0 and result.count(4) > 0, result.statuses  # both kinds of case got through
