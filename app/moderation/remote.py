"""The ``remote`` check: an OpenAI-style moderation endpoint.

``POST {url}/moderations`` with ``{"model": ..., "input": [text and image_url parts]}``; the
prompt is blocked when a result says ``"flagged": true``, and the log names the categories that
are true. The key is read once, at start-up, from an environment variable whose name must start
with ``--remote-env-prefix`` (as for remote models). A refused request, a timeout or an answer
of another shape is a failed check, which ``--moderation-fail-open`` decides on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from app.engines.base import Image
from app.errors import Invalid
from app.moderation.checks import PASS, CheckFailed, Verdict


def read_key(env_name: str, prefix: str) -> str | None:
    """The API key from ``env_name``; only names under ``prefix``, so no other secret can leave."""
    if not env_name:
        return None
    if not env_name.startswith(prefix):
        raise Invalid(
            f"--moderation-key-env must name an environment variable starting with {prefix} "
            f"(see --remote-env-prefix); {env_name!r} does not.",
            param="moderation_key_env",
        )
    key = os.environ.get(env_name)
    if not key:
        raise Invalid(f"Environment variable {env_name} is not set; it must hold the moderation API key.")
    return key


def parts(texts: Sequence[str], images: Sequence[Image]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts]
    out += [{"type": "image_url", "image_url": {"url": i.data_url()}} for i in images]
    return out


def read_results(body: Any) -> Verdict:
    """The verdict in a moderation answer; :class:`CheckFailed` when it is not one."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not results:
        raise CheckFailed("the moderation endpoint's answer has no results")
    reasons = []
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("flagged"), bool):
            raise CheckFailed("a moderation result has no true/false 'flagged'")
        if result["flagged"]:
            categories = result.get("categories")
            hits = sorted(k for k, v in categories.items() if v is True) if isinstance(categories, dict) else []
            reasons.append(", ".join(hits) or "flagged")
    return Verdict(True, "remote: " + "; ".join(reasons)) if reasons else PASS


class RemoteCheck:
    name = "remote"

    def __init__(
        self,
        url: str,
        model: str,
        key: str | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise Invalid("--moderation-url must be an http(s) URL for the remote check.", param="moderation_url")
        self.url = url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            follow_redirects=False,
        )

    async def check(self, texts: Sequence[str], images: Sequence[Image]) -> Verdict:
        if not texts and not images:
            return PASS
        payload = {"model": self.model, "input": parts(texts, images)}
        try:
            response = await self._client.post("/moderations", json=payload)
        except httpx.TimeoutException:
            raise CheckFailed(f"the moderation endpoint {self.url} timed out") from None
        except httpx.HTTPError as exc:
            raise CheckFailed(f"the moderation endpoint {self.url} did not answer: {exc!r}") from None
        if not response.is_success:
            raise CheckFailed(f"the moderation endpoint refused the request: {response!r} {response.text[:200]!r}")
        try:
            body = response.json()
        except ValueError:
            raise CheckFailed("the moderation endpoint's answer is not JSON") from None
        return read_results(body)

    async def close(self) -> None:
        await self._client.aclose()
