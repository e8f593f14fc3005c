"""The :class:`Moderator`: the one content check both APIs call before anything is generated.

The checks run in the configured order and the first that flags decides. A blocked prompt is
refused with :class:`~app.errors.Invalid` (``code = content_policy_violation``), logged (a
``moderation_log`` row and a log line with a short excerpt), and nothing else is stored. A check
that cannot decide refuses the prompt with :class:`~app.errors.Unavailable` (fail closed) unless
``--moderation-fail-open`` lets it through; either way the failure is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from app.engines.base import ChatMessage, Image
from app.errors import Invalid, Unavailable
from app.metrics import Metrics
from app.moderation.checks import KINDS, Check, CheckFailed, excerpt
from app.moderation.classifier import ModelCheck, PromptTemplate
from app.moderation.log import Origin, log_block
from app.moderation.remote import RemoteCheck, read_key
from app.moderation.words import WordsCheck, read_entries
from app.registry.core import Registry
from app.registry.spec import ModelSpec
from app.settings import Settings
from app.store.db import Store

log = logging.getLogger(__name__)

BLOCKED = "Your message was blocked by this server's content policy. Please rephrase it."
FAILED = "The content check is not available right now, so nothing was sent to a model. Please try again later."


class Moderator:
    def __init__(self, checks: Sequence[Check], store: Store, *, fail_open: bool = False) -> None:
        self.checks = list(checks)
        self.store = store
        self.fail_open = fail_open
        self.blocked = 0  # prompts refused since start-up (blocked or fail-closed)

    @property
    def active(self) -> bool:
        return bool(self.checks)

    async def check(self, texts: Sequence[str], images: Sequence[Image], origin: Origin, *, param: str) -> None:
        """Return when every check passes; otherwise log and raise (``param`` names the field at fault)."""
        if not self.checks:
            return
        texts = [t for t in texts if t.strip()]
        images = list(images)
        for check in self.checks:
            try:
                verdict = await check.check(texts, images)
            except CheckFailed as exc:
                if self.fail_open:
                    log.warning("moderation: %s check failed, the prompt goes through (fail open): %s", check.name, exc)
                    continue
                await self._record(origin, check.name, f"check failed: {exc}", texts, images)
                raise Unavailable(FAILED, retry_after=5, code="moderation_unavailable") from None
            if verdict.flagged:
                await self._record(origin, check.name, verdict.reason, texts, images)
                raise Invalid(BLOCKED, param=param, code="content_policy_violation")

    async def check_messages(self, messages: Sequence[ChatMessage], origin: Origin, *, param: str) -> None:
        """A whole conversation from a client: every message's text and images (any role)."""
        images = [i for m in messages for i in m.images]
        await self.check([m.content for m in messages], images, origin, param=param)

    async def _record(
        self, origin: Origin, checker: str, reason: str, texts: Sequence[str], images: Sequence[Image]
    ) -> None:
        self.blocked += 1
        text = excerpt(texts, images)
        log.warning(
            "moderation: blocked a %s prompt (%s: %s) battle=%s model=%s: %s",
            origin.source,
            checker,
            reason,
            origin.battle_id or "-",
            origin.model or "-",
            excerpt(texts, images, 80),
        )
        try:
            await self.store.write(log_block(origin, checker, reason, text))
        except Exception as exc:  # noqa: BLE001 - the prompt is refused even if the log write fails
            log.error("moderation: could not write the moderation log: %s", exc)

    async def close(self) -> None:
        for check in self.checks:
            await check.close()


def build_check(kind: str, settings: Settings, models: Registry, metrics: Metrics) -> Check:
    """One check of ``kind`` from the settings; :class:`Invalid` when it is not configured."""
    if kind == "words":
        entries = [("--moderation-words", w) for w in settings.moderation_words]
        if settings.moderation_words_file is not None:
            entries += read_entries(settings.moderation_words_file)
        return WordsCheck(entries)
    if kind == "model":
        if not settings.moderation_model:
            raise Invalid("The model check needs --moderation-model (a model id of the models file).")
        template = PromptTemplate(settings.moderation_prompt)
        return ModelCheck(models, metrics, settings.moderation_model, template, settings.moderation_timeout)
    if kind == "remote":
        if not settings.moderation_url:
            raise Invalid("The remote check needs --moderation-url (an OpenAI-style API base URL).")
        key = read_key(settings.moderation_key_env, settings.remote_env_prefix)
        return RemoteCheck(settings.moderation_url, settings.moderation_remote_model, key, settings.moderation_timeout)
    raise Invalid(f"--moderation: unknown check {kind!r}; use {', '.join(KINDS)}.", param="moderation")


def from_settings(settings: Settings, store: Store, models: Registry, metrics: Metrics) -> Moderator:
    """The configured checks, in order (none when ``--moderation`` is empty)."""
    checks = [build_check(kind, settings, models, metrics) for kind in settings.moderation]
    return Moderator(checks, store, fail_open=settings.moderation_fail_open)


def check_model(settings: Settings, specs: Sequence[ModelSpec]) -> None:
    """At start-up: the classifier of the model check is in the models file."""
    if "model" not in settings.moderation:
        return
    spec = next((s for s in specs if s.id == settings.moderation_model), None)
    if spec is None:
        raise Invalid(f"--moderation-model {settings.moderation_model!r} is not in the models file.")
    if spec.weight > 0:
        log.warning("moderation: the classifier %s has weight %g, so battles may draw it", spec.id, spec.weight)
    if not spec.vision:
        log.info("moderation: the classifier %s is not a vision model; the model check skips images", spec.id)
