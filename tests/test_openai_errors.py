"""Error shapes and statuses on /v1, in-process over scripted engines."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

CHAT = "/v1/chat/completions"


def _msg(content: object = "hi", role: str = "user") -> dict[str, object]:
    return {"model": "alpha", "messages": [{"role": role, "content": content}]}


def _assert_error(r, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{", None),
        (b"\xff\xfe{}", None),
        (b"[]", None),
        (b'{"model": "alpha", "messages": []}', "messages"),
        (b'{"model": "alpha", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "alpha", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
        (b'{"model": "alpha", "messages": [{"role": "user", "content": "x"}], "max_tokens": -3}', "max_tokens"),
        (b'{"model": "alpha", "messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}', "max_tokens"),
        (b'{"model": "alpha", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "temperature"),
        (b'{"model": "alpha", "messages": [{"role": "user", "content": "a\\u0000b"}]}', "messages[0].content"),
        (b'{"model": "alpha", "messages": [{"role": "user", "content": "x"}], "n": 2}', "n"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
    ],
)
async def test_bad_requests_are_400_with_param(client: AsyncTestClient, body: bytes, param: str | None) -> None:
    r = await client.post(CHAT, content=body, headers={"content-type": "application/json"})
    error = _assert_error(r, 400, param)
    assert error["type"] == "invalid_request_error"


async def test_unknown_model_is_404(client: AsyncTestClient) -> None:
    r = await client.post(CHAT, json={**_msg(), "model": "nope"})
    error = _assert_error(r, 404, "model", "model_not_found")
    assert error["message"] == "The model `nope` does not exist."


async def test_context_overflow_is_400(client: AsyncTestClient) -> None:
    r = await client.post(CHAT, json=_msg("word " * 100))
    error = _assert_error(r, 400, code="context_length_exceeded")
    assert error["message"].startswith("This model's maximum context length is 64 tokens")


async def test_body_over_the_limit_is_413(make_app) -> None:
    async with AsyncTestClient(make_app(max_body_bytes=2000)) as c:
        r = await c.post(CHAT, json=_msg("x" * 5000))
        _assert_error(r, 413)
        assert (await c.post(CHAT, json=_msg())).status_code == 200


async def test_content_parts_and_unknown_fields_are_accepted(client: AsyncTestClient) -> None:
    body = {
        "model": "alpha",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": " there"}]},
        ],
        "frobnicate": True,
    }
    r = await client.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    engine = client.app.state.models.get("alpha").engine
    assert engine.requests[-1].messages[-1].content == "hi there"
    assert engine.requests[-1].messages[0].role == "developer"


async def test_api_key_protects_v1_only(make_app) -> None:
    async with AsyncTestClient(make_app(api_key=["key-one-0123456789", "key-two-0123456789"])) as c:
        _assert_error(await c.get("/v1/models"), 401, code="invalid_api_key")
        _assert_error(await c.get("/v1/models", headers={"Authorization": "Bearer nope"}), 401)
        assert (await c.get("/v1/models", headers={"Authorization": "Bearer key-two-0123456789"})).status_code == 200
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/ready")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200


async def test_unknown_route_under_v1_is_openai_shaped(client: AsyncTestClient) -> None:
    _assert_error(await client.get("/v1/nothing"), 404)


async def test_server_keeps_serving_after_bad_input(client: AsyncTestClient) -> None:
    for body in (b"{", b"\x00\x01", b'{"model": null}'):
        assert (await client.post(CHAT, content=body, headers={"content-type": "application/json"})).status_code == 400
    r = await client.post(CHAT, json=_msg())
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Hello there."


async def test_models_list_shape(client: AsyncTestClient) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in body["data"]] == [
        ("alpha", "model", "Test Org"),
        ("beta", "model", "Test Org"),
    ]
    assert all(isinstance(m["created"], int) for m in body["data"])
