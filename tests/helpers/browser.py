"""Waiting on the page in browser tests.

Playwright's ``wait_for_function`` compiles its string inside the page whenever it has to poll,
and the pages' Content-Security-Policy (no ``'unsafe-eval'``, see app/routes/security_headers.py)
refuses that. ``page.evaluate`` goes through the DevTools protocol, which the policy does not
govern, so :func:`wait_until` polls with it instead.
"""

from __future__ import annotations

import time
from typing import Any


def wait_until(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll a JavaScript expression until it is truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g} s: {expression}")
        time.sleep(0.05)
