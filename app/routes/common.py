"""Small pieces both arena route families use: who the visitor is, rate limits, error mapping."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

from app.arena.visitors import client_ip, voter_hash


def visitor(request: Request[Any, Any, Any], state: State) -> tuple[str, str]:
    """(client ip, salted voter hash)."""
    settings = state.settings
    peer = request.client.host if request.client else None
    ip = client_ip(peer, request.headers, settings.trusted_proxies)
    return ip, voter_hash(state.secret, ip)


def limit(state: State, kind: str, ip: str) -> None:
    """Count one ``kind`` event (battle, vote, login) for ``ip`` in the one limiter, or raise RateLimited."""
    state.throttle.hit(kind, ip)
