"""Guards on raw connections, below the app: read deadlines and a cap per client address.

uvicorn's h11 protocol times out only idle kept-alive connections: a client that sends its
headers one byte at a time, or stops halfway through a body, holds a connection (and a file
descriptor) for as long as it likes. :class:`GuardedH11Protocol` adds what it lacks:

- **headers**: a request's headers must be complete within ``header_timeout`` seconds of the
  connection opening, or of the first byte of the next request on a kept-alive connection; a
  late one gets ``408`` and is closed;
- **body**: once the headers are in, the whole body within ``body_timeout`` seconds, or the
  connection is closed (the app sees a disconnect);
- **connections per client**: at most ``per_client`` open connections from one address;
  another gets ``429`` and is closed at once. Trusted proxies are exempt: they carry many
  clients, whom the app tells apart by X-Forwarded-For.

:func:`guarded_protocol` binds a :class:`ConnectionGuard` (the server's shared counts) to the
protocol class uvicorn is given (``http=``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any, ClassVar, Literal

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


def _raw_response(status: str, message: str) -> bytes:
    body = message.encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
    return (head + "connection: close\r\n\r\n").encode() + body


REQUEST_TIMEOUT = _raw_response("408 Request Timeout", "The request's headers took too long to arrive.")
TOO_MANY = _raw_response("429 Too Many Requests", "Too many open connections from your address.")


class ConnectionGuard:
    """The deadlines, and the open connections of each client address, for one server."""

    def __init__(
        self, *, header_timeout: float, body_timeout: float, per_client: int, exempt: Collection[str] = ()
    ) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.per_client = per_client
        self.exempt = frozenset(exempt)
        self.open: dict[str, int] = {}
        self.timed_out = 0  # connections closed for a late request (headers or body)
        self.refused = 0  # connections refused over the per-client cap

    def enter(self, address: str) -> bool:
        """Count a new connection from ``address``; False when it is one too many."""
        if address in self.exempt:
            return True
        if self.open.get(address, 0) >= self.per_client:
            self.refused += 1
            return False
        self.open[address] = self.open.get(address, 0) + 1
        return True

    def leave(self, address: str) -> None:
        if address in self.exempt:
            return
        left = self.open.get(address, 0) - 1
        if left > 0:
            self.open[address] = left
        else:
            self.open.pop(address, None)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and the cap of :class:`ConnectionGuard`."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting: Literal["headers", "body"] | None = None  # what the deadline is for
        self._address = ""
        self._counted = False
        self._seen: object = None  # the request cycle whose headers have arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        if not self.guard.enter(self._address):
            transport.write(TOO_MANY)
            transport.close()
            return
        self._counted = True
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted:
            self._counted = False
            self.guard.leave(self._address)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._counted:
            return  # refused: closing
        if self._waiting is None and (self.cycle is None or self.cycle.response_complete):
            self._arm("headers")  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle is not self._seen:  # a request's headers are in
            self._seen = cycle
            if cycle.more_body:
                self._arm("body")
            else:
                self._disarm()
        elif self._waiting == "body" and cycle is not None and not cycle.more_body:
            self._disarm()  # the body is in

    def _arm(self, waiting: Literal["headers", "body"]) -> None:
        self._disarm()
        seconds = self.guard.header_timeout if waiting == "headers" else self.guard.body_timeout
        self._waiting = waiting
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self._waiting = None

    def _expire(self) -> None:
        waiting, self._deadline, self._waiting = self._waiting, None, None
        if self.transport.is_closing():
            return
        self.guard.timed_out += 1
        log.debug("closing a connection from %s: the request's %s came too slowly", self._address, waiting)
        if waiting == "headers":
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def guarded_protocol(guard: ConnectionGuard) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http=`` option, bound to ``guard``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
