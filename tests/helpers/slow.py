"""Slow clients on raw sockets: headers or bodies sent a trickle at a time (slowloris).

Shared by tests/reliability/test_floods.py and bench/reliability.py: ``slow_clients`` opens
``count`` connections, sends each an unfinished request, keeps adding a byte now and then (as a
slowloris does, to defeat per-read timeouts), and reports how many the server closed and how many
are still open when ``wait`` seconds have passed.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

SLOW_HEADERS = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-0: x\r\n"
SLOW_BODY = (
    b"POST /api/v1/battles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 4000\r\n\r\n" + b'{"prompt": "'
)


@dataclass
class SlowReport:
    opened: int = 0
    closed: int = 0  # by the server
    still_open: int = 0
    answers: list[bytes] = field(default_factory=list)  # the first bytes each closed one got

    def statuses(self) -> list[str]:
        return [a.split(b"\r\n", 1)[0].decode(errors="replace") for a in self.answers if a]


def _read_closed(sock: socket.socket, got: bytearray) -> bool:
    """Read what is there without blocking; True once the server has closed the connection."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
            got += data
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def slow_clients(port: int, count: int, wait: float, *, body: bool = False, trickle: float = 0.5) -> SlowReport:
    """``count`` slow requests (headers, or a body when ``body``) for up to ``wait`` seconds."""
    report = SlowReport()
    socks: list[tuple[socket.socket, bytearray]] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(SLOW_BODY if body else SLOW_HEADERS)
            sock.setblocking(False)
            socks.append((sock, bytearray()))
        report.opened = len(socks)
        open_ = list(socks)
        deadline = time.monotonic() + wait
        step = 0
        while open_ and time.monotonic() < deadline:
            time.sleep(trickle)
            step += 1
            for item in list(open_):
                sock, got = item
                if _read_closed(sock, got):
                    open_.remove(item)
                    report.answers.append(bytes(got))
                    continue
                try:  # one more header line, or one more byte of the body
                    sock.send(b"a" if body else b"X-Slow-%d: x\r\n" % step)
                except OSError:
                    open_.remove(item)
                    report.answers.append(bytes(got))
        report.closed = report.opened - len(open_)
        report.still_open = len(open_)
    finally:
        for sock, _ in socks:
            sock.close()
    return report
