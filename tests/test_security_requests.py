"""Issue 19, item 6, through the real `arena serve`: /v1 takes only JSON bodies, so another site's
page cannot make a visitor's browser generate (a form or text/plain POST needs no CORS preflight)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.server import ArenaServer, scripted_models_toml

CHAT = {"model": "alpha", "messages": [{"role": "user", "content": "Hi"}]}
COMPLETION = {"model": "alpha", "prompt": "Hi", "max_tokens": 4}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("v1-media")
    (tmp / "models.toml").write_text(scripted_models_toml({"alpha": ["A."], "beta": ["B."]}))
    running = ArenaServer(tmp, "--models", str(tmp / "models.toml"))
    yield running
    running.stop()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # what fetch(..., {mode: "no-cors", body: JSON.stringify(...)}) sends
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        None,  # no Content-Type at all
    ],
)
def test_v1_refuses_bodies_that_are_not_json_with_415(server: ArenaServer, path: str, content_type: str | None) -> None:
    body = json.dumps(CHAT if "chat" in path else COMPLETION).encode()  # the body itself is valid JSON
    headers = {"content-type": content_type} if content_type else {}
    r = httpx.post(server.base + path, content=body, headers=headers, timeout=10)
    assert r.status_code == 415, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == "invalid_request_error" and "application/json" in error["message"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_v1_takes_json_with_or_without_a_charset(server: ArenaServer, content_type: str) -> None:
    body = json.dumps(CHAT).encode()
    r = httpx.post(server.base + "/v1/chat/completions", content=body, headers={"content-type": content_type})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]


def test_v1_get_routes_need_no_body(server: ArenaServer) -> None:
    assert httpx.get(server.base + "/v1/models", timeout=10).status_code == 200
