"""Headers every response gets, and the CSRF cookie's ``Secure`` over https.

The pages load htmx, its SSE extension and images.js from /static and use no inline script or
style, so the policy allows scripts, styles and connections (SSE) from this origin only; images
also from ``data:`` (the empty favicon) and ``blob:`` (the picker's preview of a chosen file).
A response that sets a header itself keeps its own (an uploaded image is ``default-src 'none'``).

The request's scheme is the connection's, or what a ``--trusted-proxies`` proxy says in
X-Forwarded-Proto (uvicorn sets it; see :func:`app.cli.uvicorn_options`).
"""

from __future__ import annotations

from typing import Any

from litestar.datastructures import MutableScopeHeaders

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}
CSRF_COOKIE = "csrftoken"


def is_https(scope: Any) -> bool:
    return scope.get("scheme") == "https"


def _secure_csrf_cookie(headers: MutableScopeHeaders) -> None:
    """Litestar's CSRF middleware sets its cookie with one ``Secure`` setting for every request;
    over https it gets ``Secure`` here."""
    cookies = headers.getall("set-cookie", [])
    if not any(c.startswith(CSRF_COOKIE + "=") for c in cookies):
        return
    del headers["set-cookie"]
    for cookie in cookies:
        attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
        if cookie.startswith(CSRF_COOKIE + "=") and "secure" not in attrs:
            cookie += "; Secure"
        headers.add("set-cookie", cookie)


async def add_security_headers(message: Any, scope: Any) -> None:
    """A before-send hook: the headers above on every response that does not set its own."""
    if message["type"] != "http.response.start":
        return
    message.setdefault("headers", [])
    headers = MutableScopeHeaders.from_message(message)
    for name, value in HEADERS.items():
        if name not in headers:
            headers[name] = value
    if is_https(scope):
        _secure_csrf_cookie(headers)
