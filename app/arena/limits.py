"""The one rate limiter: sliding windows of events per key, for every route that starts work.

:class:`Throttle` holds one window per kind (``generation`` per client, ``model`` per client and
model, ``battle``, ``vote``, ``login``). Every generation start (battle sides, turns,
regenerates, direct chat, ``/v1``) goes through :meth:`Throttle.admit`; a refusal raises
:class:`~app.errors.RateLimited` (429 with Retry-After) and records nothing.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from app.errors import RateLimited
from app.settings import Settings, parse_rate

FORGET_AFTER = 100_000  # keys held before idle ones are dropped


class Window:
    """At most ``count`` events per ``seconds`` for each key."""

    def __init__(self, count: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self.seconds = seconds
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def wait(self, key: str, cost: int = 1) -> float:
        """Seconds until ``cost`` more events fit for ``key`` (0 when they fit now); records nothing."""
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            return 0.0 if cost <= self.count else self.seconds
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        over = len(hits) + cost - self.count
        if over <= 0:
            return 0.0
        if over > len(hits):
            return self.seconds
        return hits[over - 1] + self.seconds - now

    def take(self, key: str, cost: int = 1) -> None:
        now = self.clock()
        self._hits.setdefault(key, deque()).extend([now] * cost)
        if len(self._hits) > FORGET_AFTER:
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.seconds}


def _retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


class Throttle:
    """Every rate limit of the server, by kind."""

    WHAT = {
        "generation": "generations",
        "model": "generations",
        "battle": "new battles",
        "vote": "votes",
        "login": "login attempts",
    }

    def __init__(self, windows: Mapping[str, Window]) -> None:
        self.windows = dict(windows)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.monotonic) -> Throttle:
        rates = {
            "generation": settings.generation_rate,
            "model": settings.model_rate,
            "battle": settings.battle_rate,
            "vote": settings.vote_rate,
            "login": settings.login_rate,
        }
        return cls({kind: Window(*parse_rate(rate), clock=clock) for kind, rate in rates.items()})

    def hit(self, kind: str, key: str) -> None:
        """Count one ``kind`` event for ``key``, or raise :class:`RateLimited`."""
        wait = self.windows[kind].wait(key)
        if wait > 0:
            raise self._refusal(kind, wait)
        self.windows[kind].take(key)

    def check(self, kind: str, key: str) -> None:
        """Raise :class:`RateLimited` while ``kind``'s window for ``key`` is full; counts nothing
        (with :meth:`count`: a window of failures only, such as wrong admin tokens)."""
        wait = self.windows[kind].wait(key)
        if wait > 0:
            raise self._refusal(kind, wait)

    def count(self, kind: str, key: str) -> None:
        self.windows[kind].take(key)

    def admit(self, client: str, models: Iterable[str]) -> None:
        """Count one generation on each of ``models`` for ``client``, or raise and count none.

        The message names no model: in an anonymous battle it must not tell which were drawn."""
        ids = list(models)
        checks = [("generation", client, len(ids))] + [("model", f"{client}\x00{m}", 1) for m in ids]
        wait = max((self.windows[kind].wait(key, cost) for kind, key, cost in checks), default=0.0)
        if wait > 0:
            raise self._refusal("generation", wait)
        for kind, key, cost in checks:
            self.windows[kind].take(key, cost)

    def _refusal(self, kind: str, wait: float) -> RateLimited:
        seconds = _retry_after(wait)
        return RateLimited(
            f"Too many {self.WHAT[kind]} from your address; try again in {seconds} s.",
            retry_after=seconds,
            code="rate_limited",
        )
