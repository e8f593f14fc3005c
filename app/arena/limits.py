"""The one rate limiter: sliding windows of events per key, for every route that starts work.

:class:`Throttle` holds one window per kind (``generation`` per client, ``model`` per client and
model, ``battle``, ``vote``, ``login``, ``feedback``, ``stop``). Every generation start (battle
sides, turns, regenerates, direct chat, ``/v1``) goes through :meth:`Throttle.admitted`; a
refusal raises :class:`~app.errors.RateLimited` (429 with Retry-After) and records nothing.

Two rules keep the limiter from telling a voter which models their anonymous battle drew:
anonymous battle sides count only in the client's own window, never in a per-model one, and a
request refused after admission (a bad field, an image for a text-only model, a blocked prompt)
gives its count back, so probing with refused calls costs nothing and measures nothing.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from app.errors import DomainError, RateLimited
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

    def take(self, key: str, cost: int = 1) -> float:
        """Record ``cost`` events for ``key`` now; the time recorded (for :meth:`give_back`)."""
        now = self.clock()
        self._hits.setdefault(key, deque()).extend([now] * cost)
        if len(self._hits) > FORGET_AFTER:
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.seconds}
        return now

    def give_back(self, key: str, at: float, cost: int = 1) -> None:
        """Forget ``cost`` events recorded for ``key`` at ``at`` (those that have not expired)."""
        hits = self._hits.get(key)
        for _ in range(cost):
            if not hits or at not in hits:
                return
            hits.remove(at)


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
        "feedback": "feedback clicks",
        "stop": "stop requests",
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
            "feedback": settings.feedback_rate,
            "stop": settings.stop_rate,
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

    def admit(self, client: str, models: Iterable[str], *, per_model: bool = True) -> list[tuple[str, str, int, float]]:
        """Count one generation on each of ``models`` for ``client``, or raise and count none;
        what was counted, for :meth:`give_back`.

        ``per_model=False`` (an anonymous battle's sides) counts them in the client's window only:
        a per-model window shared with ``/v1`` would tell the voter which models were drawn. The
        message names no model either."""
        ids = list(models)
        checks = [("generation", client, len(ids))]
        if per_model:
            checks += [("model", f"{client}\x00{m}", 1) for m in ids]
        wait = max((self.windows[kind].wait(key, cost) for kind, key, cost in checks), default=0.0)
        if wait > 0:
            raise self._refusal("generation", wait)
        return [(kind, key, cost, self.windows[kind].take(key, cost)) for kind, key, cost in checks]

    def give_back(self, taken: Iterable[tuple[str, str, int, float]]) -> None:
        for kind, key, cost, at in taken:
            self.windows[kind].give_back(key, at, cost)

    @contextmanager
    def admitted(self, client: str, models: Iterable[str], *, per_model: bool = True) -> Iterator[None]:
        """:meth:`admit`, and the counts given back when the block refuses the request (raises a
        domain error: a 4xx, or a 5xx before anything was generated)."""
        taken = self.admit(client, models, per_model=per_model)
        try:
            yield
        except DomainError:
            self.give_back(taken)
            raise

    def _refusal(self, kind: str, wait: float) -> RateLimited:
        seconds = _retry_after(wait)
        return RateLimited(
            f"Too many {self.WHAT[kind]} from your address; try again in {seconds} s.",
            retry_after=seconds,
            code="rate_limited",
        )


class Slots:
    """At most ``per_key`` things open at once for each key: the event streams one client holds.

    :meth:`take` gives a :class:`Slot` or raises :class:`RateLimited`; :func:`held` wraps a
    stream's body so that its slot is free once the body ends, fails or is dropped."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self.open: dict[str, int] = {}

    def take(self, key: str) -> Slot:
        if self.open.get(key, 0) >= self.per_key:
            raise RateLimited(
                f"Too many open event streams from your address (at most {self.per_key}); close one and retry.",
                retry_after=1,
                code="too_many_streams",
            )
        self.open[key] = self.open.get(key, 0) + 1
        return Slot(self, key)

    def _free(self, key: str) -> None:
        left = self.open.get(key, 0) - 1
        if left > 0:
            self.open[key] = left
        else:
            self.open.pop(key, None)


class Slot:
    def __init__(self, slots: Slots, key: str) -> None:
        self._slots: Slots | None = slots
        self.key = key

    def release(self) -> None:
        """Free the slot (once; later calls do nothing)."""
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._free(self.key)

    def __del__(self) -> None:  # a stream whose body never ran (the client left first) frees it too
        self.release()


async def held(slot: Slot, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``body``, holding ``slot`` until it ends, fails or is closed (the client went away)."""
    try:
        async for chunk in body:
            yield chunk
    finally:
        slot.release()
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
