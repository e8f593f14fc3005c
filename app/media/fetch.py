"""Remote image URLs: refused unless the operator names the domains they may come from.

With no domains set (the default) nothing is ever fetched, so an ``http(s)`` URL in a request
cannot make the server reach anywhere (no server-side request forgery). With domains set, only
``https`` URLs whose host is exactly one of them are fetched, within a size and a time limit, and
a redirect is followed only to another allowed host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

import httpx

from app.errors import Invalid

REDIRECTS = 3


def allowed_host(url: str, domains: Sequence[str]) -> str | None:
    """The host of ``url`` when it is https and exactly one of ``domains``; otherwise None
    (a malformed URL too: a bad IPv6 host, a port that is not a number)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what checks it
    except ValueError:
        return None
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https" or not host or parts.username or parts.password:
        return None
    return host if host in {d.lower().rstrip(".") for d in domains} else None


def check_url(url: str, domains: Sequence[str], *, param: str) -> None:
    """Refuse a URL we will not fetch, with a message that says why."""
    if not domains:
        raise Invalid(
            "Remote image URLs are not fetched by this server; send the image inline as a data: URL "
            "(data:image/png;base64,...).",
            param=param,
            code="image_url_not_allowed",
        )
    if allowed_host(url, domains) is None:
        raise Invalid(
            f"Images are fetched only over https from: {', '.join(domains)}.", param=param, code="image_url_not_allowed"
        )


async def fetch(
    url: str,
    domains: Sequence[str],
    *,
    max_bytes: int,
    timeout: float,
    param: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[str, bytes]:
    """(Content-Type, bytes) of an allowed https URL, within ``timeout`` seconds in all;
    :class:`Invalid` for anything else."""
    check_url(url, domains, param=param)
    try:
        async with asyncio.timeout(timeout):
            return await _get(url, domains, max_bytes, param, transport)
    except TimeoutError:
        raise Invalid(f"The image URL took longer than {timeout:g} s.", param=param) from None


async def _get(
    url: str, domains: Sequence[str], max_bytes: int, param: str, transport: httpx.AsyncBaseTransport | None
) -> tuple[str, bytes]:
    client = httpx.AsyncClient(follow_redirects=False, trust_env=False, transport=transport)
    async with client:
        for _hop in range(REDIRECTS + 1):
            try:
                async with client.stream("GET", url, headers={"Accept": "image/png, image/jpeg, image/webp"}) as reply:
                    if reply.is_redirect:
                        url = urljoin(url, reply.headers.get("location", ""))
                        check_url(url, domains, param=param)
                        continue
                    if not reply.is_success:
                        raise Invalid(f"The image URL answered {reply.reason_phrase or 'an error'}.", param=param)
                    return reply.headers.get("content-type", ""), await _body(reply, max_bytes, param)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise Invalid(f"The image URL could not be fetched: {type(exc).__name__}.", param=param) from None
    raise Invalid("The image URL redirects too often.", param=param)


async def _body(reply: httpx.Response, max_bytes: int, param: str) -> bytes:
    declared = reply.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise Invalid(f"The image at the URL is larger than {max_bytes} bytes.", param=param, code="image_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in reply.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise Invalid(
                f"The image at the URL is larger than {max_bytes} bytes.", param=param, code="image_too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)
