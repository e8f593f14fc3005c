"""Issue 19, item 11: floods against the real `arena serve` (scripted engines, slowed by the
fault launcher so that streams stay open).

- 100 connections sending their headers a line at a time are closed once --header-timeout has
  passed (they stayed open for 50 s before); a body that stalls is closed after --body-timeout;
- one address holds at most --max-connections-per-client connections, and at most
  --max-streams-per-client event streams (battle SSE and streamed /v1 together): one more is 429;
- feedback and stop have their own rate limits.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.crash import models_file
from tests.helpers.server import ArenaServer
from tests.helpers.slow import slow_clients

pytestmark = pytest.mark.integration

LONG = " ".join(f"w{i}" for i in range(40))  # 40 words at 0.25 s: a stream stays open for 10 s
SLOW = json.dumps({m: {"kind": "slow", "delay": 0.25} for m in ("alpha", "beta")})
CHAT = {"model": "alpha", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArenaServer]:
    tmp = tmp_path_factory.mktemp("floods")
    flags = [
        "--models",
        str(models_file(tmp, {"alpha": [LONG], "beta": [LONG]})),
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--max-connections-per-client",
        "120",
        "--max-streams-per-client",
        "2",
        "--feedback-rate",
        "3/60",
        "--stop-rate",
        "3/60",
    ]
    server = ArenaServer(tmp, *flags, launcher=("-m", "tests.helpers.faults", SLOW))
    yield server
    server.stop()


def test_slow_headers_and_bodies_are_closed(server: ArenaServer) -> None:
    report = slow_clients(server.port, 100, wait=30)
    assert report.opened == 100
    assert report.still_open == 0, f"{report.still_open} slow-header connections still open"
    assert set(report.statuses()) == {"HTTP/1.1 408 Request Timeout"}
    assert httpx.get(server.base + "/health").status_code == 200  # served throughout

    report = slow_clients(server.port, 10, wait=30, body=True)
    assert report.still_open == 0, f"{report.still_open} slow-body connections still open"

    with httpx.Client(base_url=server.base) as client:  # kept alive: the next request is timed too
        assert client.get("/health").status_code == 200
        assert client.get("/health").status_code == 200


def _eventually_streams(client: httpx.Client) -> bool:
    """A new stream opens once the server has seen the old ones go (a disconnect takes a moment)."""
    for _ in range(50):
        with client.stream("POST", "/v1/chat/completions", json=CHAT) as again:
            if again.status_code == 200:
                return True
        time.sleep(0.1)
    return False


def test_streams_and_connections_per_client_are_capped(server: ArenaServer) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        battle = client.post("/api/v1/battles", json={"prompt": "Hi"}).json()["id"]
        with (
            client.stream("GET", f"/api/v1/battles/{battle}/events") as first,
            client.stream("POST", "/v1/chat/completions", json=CHAT) as second,
        ):
            assert first.status_code == second.status_code == 200
            for over in (
                client.post("/v1/chat/completions", json=CHAT),
                client.get(f"/battle/{battle}/events"),
                client.get(f"/api/v1/battles/{battle}/events"),
            ):
                assert over.status_code == 429 and over.headers["retry-after"] == "1", over.text
                assert "event streams" in over.text
        assert _eventually_streams(client), "the closed streams' slots were never freed"

    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(120)]
    try:
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 429"), answer
        assert extra.recv(4096) == b""  # and closed
        extra.close()
    finally:
        for sock in socks:
            sock.close()


def test_feedback_and_stop_are_rate_limited(server: ArenaServer) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        assert client.get("/").status_code == 200
        headers = {"x-csrftoken": client.cookies["csrftoken"], "hx-request": "true"}
        battle = client.post("/api/v1/battles", json={"prompt": "Hi"}).json()["id"]
        for path, data in (
            (f"/battle/{battle}/feedback", {"kind": "up", "message_id": "1"}),
            (f"/battle/{battle}/stop", {}),
        ):
            codes = [client.post(path, data=data, headers=headers).status_code for _ in range(4)]
            assert 429 not in codes[:3] and codes[3] == 429, (path, codes)
