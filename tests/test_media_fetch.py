"""Remote image URLs (only with an allow-list): https from the exact hosts named, redirects only to
them, a size and a time limit. Against httpx's MockTransport: nothing leaves the machine."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.errors import Invalid
from app.media.fetch import allowed_host, check_url, fetch

DOMAINS = ["img.example.org"]
PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 100


def transport(routes: dict[str, httpx.Response], seen: list[str] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(str(request.url))
        return routes.get(str(request.url), httpx.Response(404))

    return httpx.MockTransport(handler)


async def get(url: str, routes: dict[str, httpx.Response], *, max_bytes: int = 1000, seen: list[str] | None = None):
    return await fetch(url, DOMAINS, max_bytes=max_bytes, timeout=2, param="p", transport=transport(routes, seen))


def test_only_https_from_the_exact_hosts() -> None:
    assert allowed_host("https://img.example.org/a.png", DOMAINS) == "img.example.org"
    assert allowed_host("https://IMG.example.org./a.png", DOMAINS) == "img.example.org"
    for url in (
        "http://img.example.org/a.png",
        "https://evil.img.example.org/a.png",
        "https://img.example.org.evil.com/a.png",
        "https://user:pw@img.example.org/a.png",
        "https://127.0.0.1/a.png",
        "file:///etc/passwd",
    ):
        assert allowed_host(url, DOMAINS) is None, url
    with pytest.raises(Invalid, match="not fetched by this server"):
        check_url("https://img.example.org/a.png", [], param="p")


async def test_an_allowed_image_is_fetched() -> None:
    url = "https://img.example.org/a.png"
    assert await get(url, {url: httpx.Response(200, content=PNG, headers={"content-type": "image/png"})}) == (
        "image/png",
        PNG,
    )


async def test_redirects_stay_on_allowed_hosts() -> None:
    start, inside = "https://img.example.org/a", "https://img.example.org/b.png"
    seen: list[str] = []
    routes = {start: httpx.Response(302, headers={"location": "/b.png"}), inside: httpx.Response(200, content=PNG)}
    assert (await get(start, routes, seen=seen))[1] == PNG
    assert seen == [start, inside]
    seen.clear()
    routes = {start: httpx.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data"})}
    with pytest.raises(Invalid, match="only over https from"):
        await get(start, routes, seen=seen)
    assert seen == [start]  # the other host was never asked
    loop = {start: httpx.Response(302, headers={"location": start})}
    with pytest.raises(Invalid, match="redirects too often"):
        await get(start, loop)


async def test_size_and_errors() -> None:
    url = "https://img.example.org/a.png"
    with pytest.raises(Invalid, match="larger than 1000 bytes") as caught:
        await get(url, {url: httpx.Response(200, content=b"x" * 5000)})
    assert caught.value.code == "image_too_large"

    async def drip():
        for _ in range(50):
            yield b"x" * 100

    with pytest.raises(Invalid, match="larger than 1000 bytes"):  # no Content-Length: counted as it comes
        await get(url, {url: httpx.Response(200, content=drip())})
    with pytest.raises(Invalid, match="answered Not Found"):
        await get(url, {})


async def test_the_whole_fetch_has_a_deadline() -> None:
    async def slow(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=PNG)

    with pytest.raises(Invalid, match="took longer than 0.2 s"):
        await fetch(
            "https://img.example.org/a.png",
            DOMAINS,
            max_bytes=1000,
            timeout=0.2,
            param="p",
            transport=httpx.MockTransport(slow),
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1",
        "https://img.example.org:abc/a.png",
        "https://img.example.org/a\x00.png",
        "https://img.example.org:99999/a.png",
    ],
)
async def test_a_malformed_url_is_refused_not_a_crash(url: str) -> None:
    with pytest.raises(Invalid) as caught:
        await get(url, {})
    assert caught.value.param == "p"
