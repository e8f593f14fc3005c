"""Who is asking: the client IP (forwarded headers only from trusted proxies), a salted hash of it
for storage, and per-IP rate limits."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from collections.abc import Mapping, Sequence


def client_ip(peer: str | None, headers: Mapping[str, str], trusted_proxies: Sequence[str]) -> str:
    """The socket address, unless it is a trusted proxy: then the last untrusted X-Forwarded-For hop."""
    ip = peer or "unknown"
    if ip not in trusted_proxies:
        return ip
    forwarded = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(forwarded):
        if hop not in trusted_proxies:
            return hop
    return ip


def voter_hash(secret: str, ip: str) -> str:
    return hmac.new(secret.encode(), ip.encode(), hashlib.sha256).hexdigest()[:32]


def parse_rate(spec: str) -> tuple[int, float]:
    """'COUNT/SECONDS' -> (count, seconds)."""
    count, _, seconds = spec.partition("/")
    try:
        n, s = int(count), float(seconds or 60)
    except ValueError:
        raise ValueError(f"rate must look like COUNT/SECONDS, got {spec!r}") from None
    if n <= 0 or s <= 0:
        raise ValueError(f"rate must be positive, got {spec!r}")
    return n, s


class RateLimiter:
    """A sliding window of at most ``count`` events per ``seconds`` for each key."""

    def __init__(self, count: int, seconds: float, clock: object = time.monotonic) -> None:
        self.count = count
        self.seconds = seconds
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> float:
        """Record an event; return 0 when allowed, else the seconds to wait."""
        now = self.clock()  # type: ignore[operator]
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.count:
            return hits[0] + self.seconds - now
        hits.append(now)
        if len(self._hits) > 100_000:  # forget idle visitors
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.seconds}
        return 0.0
