"""The arena: battles, turns, stop, regenerate and votes, over the registry and the store.

Both APIs (pages and /api/v1) call this; it knows nothing of HTML or JSON.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.arena import battle_images as bi
from app.arena.battle_images import Upload
from app.arena.identity import flag_if_leaked
from app.arena.limits import Throttle
from app.arena.live import Event, LiveBattle, Side, Turn
from app.arena.pairs import NotEnoughModels, draw_pair
from app.engines.base import ChatMessage, Delta, EngineError, GenerationRequest, Image
from app.errors import Conflict, DomainError, Failed, Forbidden, Invalid, NotFound, Unavailable
from app.metrics import Metrics
from app.moderation.log import Origin
from app.moderation.service import Moderator
from app.rating.categories import battle_categories
from app.rating.style import style_features
from app.registry import generate
from app.registry.core import Registry
from app.store import battles as q
from app.store.db import Store

if TYPE_CHECKING:
    from app.media.images import ImageStore

log = logging.getLogger(__name__)

MAX_LIVE = 5000  # battles kept in memory; older ones are reloaded from the store on demand
MODE_NAMES = {"anony": "anonymous battle", "named": "side by side", "direct": "chat"}


@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = 8000
    max_turns: int = 8
    generation_timeout: float = 300.0
    modes: tuple[str, ...] = ("anony", "named", "direct")  # the modes visitors may start (--modes)


@dataclass
class _Progress:
    """How far one side's generation got: for the stored answer's timings and token counts."""

    started_at: float = field(default_factory=time.perf_counter)
    ttft: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def seen(self, delta: Delta) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started_at
        self.prompt_tokens, self.completion_tokens = delta.prompt_tokens, delta.completion_tokens


def public_error(side: str, mode: str) -> str:
    who = f"Model {side.upper()}" if mode == "anony" else "The model"
    return f"{who} failed to answer. This battle cannot be voted on; please start a new one."


class Arena:
    def __init__(
        self, models: Registry, store: Store, metrics: Metrics, limits: Limits, rng: random.Random | None = None
    ) -> None:
        self.models = models
        self.store = store
        self.metrics = metrics
        self.limits = limits
        self.rng = rng or random.SystemRandom()
        self.live: OrderedDict[str, LiveBattle] = OrderedDict()
        self.on_vote: Callable[[], None] | None = None  # e.g. the leaderboard's cache bump
        self.throttle: Throttle | None = None  # the one rate limiter of generations (per client and model)
        self.images: ImageStore | None = None  # sanitizes and stores uploaded images; None: no images
        self.identity_check = True  # flag anonymous battles whose answer names its own model
        self.moderation: Moderator | None = None  # the content check every prompt and image passes first

    def _admitted(self, client: str, battle_mode: str, models: dict[str, str]) -> AbstractContextManager[None]:
        """Count a generation per side against ``client``'s limits, or raise RateLimited; a refusal
        inside the block gives the counts back. Anonymous sides count in no per-model window."""
        if self.throttle is None:
            return nullcontext()
        return self.throttle.admitted(client, models.values(), per_model=battle_mode != "anony")

    # -- starting battles and turns -----------------------------------------------------------

    def eligible(self, vision: bool = False) -> list[tuple[str, float]]:
        """Models an anonymous battle may draw: loaded, active, in battles (``battle = true``), with
        their sampling weights; a battle about an image (``vision``) only vision models."""
        return [
            (e.id, e.spec.weight)
            for e in self.models.servable()
            if e.state == "active" and e.spec.battle and (not vision or bi.sees(e))
        ]

    def _check_prompt(self, prompt: str) -> str:
        prompt = prompt.strip()
        if not prompt:
            raise Invalid("Please type a prompt.")
        if len(prompt) > self.limits.max_prompt_chars:
            raise Invalid(f"The prompt is longer than {self.limits.max_prompt_chars} characters.")
        if "\x00" in prompt:
            raise Invalid("The prompt may not contain NUL bytes.")
        return prompt

    def check_mode(self, mode: str) -> None:
        """``mode`` is open on this server (--modes), or Forbidden; an unknown mode is Invalid."""
        if mode not in MODE_NAMES:
            raise Invalid("mode must be anony, named or direct", param="mode")
        if mode not in self.limits.modes:
            open_ = ", ".join(MODE_NAMES[m] for m in self.limits.modes)
            raise Forbidden(
                f"{MODE_NAMES[mode].capitalize()} is not open on this server; open: {open_}.",
                param="mode",
                code="mode_closed",
            )

    async def _check_model(self, model_id: str, vision: bool = False) -> None:
        try:
            entry = await generate.resolve(self.models, model_id)
        except NotFound as exc:  # a model the visitor picked: their mistake, not a missing page
            raise Invalid(exc.message) from None
        if entry.spec.anony_only:
            raise Forbidden(
                f"The model `{model_id}` is only in anonymous battles.", param="models", code="model_anony_only"
            )
        if vision and not bi.sees(entry):
            raise Invalid(
                f"The model `{model_id}` does not take images; pick a vision model, or send no image.",
                param="models",
                code="model_not_vision",
            )

    async def _sides(self, mode: str, models: list[str] | None, vision: bool) -> tuple[dict[str, str], float]:
        """The battle's models (side -> id) and the pair's probability; only vision models for
        a battle about an image."""
        if mode == "anony":
            try:
                a, b, prob = draw_pair(self.eligible(vision), self.rng, vision=vision)
            except NotEnoughModels as exc:
                raise Unavailable(str(exc)) from None
            return {"a": a, "b": b}, prob
        if mode == "named":
            if not models or len(models) != 2 or models[0] == models[1]:
                raise Invalid("Pick two different models.")
        elif mode == "direct":
            if not models or len(models) != 1:
                raise Invalid("Pick one model.")
        else:
            raise Invalid("mode must be anony, named or direct")
        assert models is not None
        for m in models:
            await self._check_model(m, vision)
        return dict(zip("ab", models, strict=False)), 1.0

    async def start(
        self,
        prompt: str,
        *,
        mode: str,
        voter_hash: str,
        models: list[str] | None = None,
        images: Sequence[Upload] = (),
    ) -> LiveBattle:
        """A new battle; ``images`` (raw bytes, declared type) go with the first prompt. Every
        check runs before anything is stored: a refused battle leaves no row and no file."""
        prompt = self._check_prompt(prompt)
        self.check_mode(mode)
        checked = await bi.check_uploads(self.images, images)  # a bad file is a 400 whatever the models
        sides, prob = await self._sides(mode, models, vision=bool(checked))
        with self._admitted(voter_hash, mode, sides):
            await self._moderate(
                prompt, checked, Origin("battle", voter_hash=voter_hash, model=" ".join(sides.values()))
            )
        battle = LiveBattle(uuid.uuid4().hex, mode, sides, owner=voter_hash)
        await bi.save_files(self.images, checked)
        await self.store.write(
            q.create_battle(q.NewBattle(battle.id, mode, sides["a"], sides.get("b", ""), prob, voter_hash, prompt))
        )
        self._remember(battle)
        await self._begin_turn(battle, prompt, checked)
        return battle

    async def add_turn(self, battle_id: str, prompt: str, *, client: str, images: Sequence[Upload] = ()) -> LiveBattle:
        prompt = self._check_prompt(prompt)
        battle = await self.owned(battle_id, client)
        self.check_mode(battle.mode)  # the mode may have closed since the battle began
        self._check_open(battle, len(images))
        checked = await bi.check_uploads(self.images, images, battle.image_count)
        await self._moderate(prompt, checked, Origin("battle", battle.id, client, " ".join(battle.models.values())))
        self._check_open(battle, len(images))  # checking the image took a while: still open?
        with self._admitted(client, battle.mode, battle.models):
            await self._begin_turn(battle, prompt, checked)
        return battle

    async def _moderate(self, prompt: str, checked: Sequence[bi.Checked], origin: Origin) -> None:
        """The content check (:mod:`app.moderation`) on the prompt and its images, before anything
        is stored or generated: a blocked prompt is an Invalid (content_policy_violation)."""
        if self.moderation is not None:
            await self.moderation.check([prompt], [c.image for c in checked], origin, param="prompt")

    def _check_open(self, battle: LiveBattle, images: int) -> None:
        """The battle takes another turn (with ``images`` new images), or Conflict/Invalid."""
        if battle.voted:
            raise Conflict("This battle is over; start a new one.")
        if battle.interrupted:
            raise Conflict("This battle was interrupted when the server restarted; start a new one.")
        if battle.failed:
            raise Conflict("A model failed in this battle; start a new one.")
        if battle.busy:
            raise Conflict("Wait for both answers before sending the next prompt.")
        if len(battle.history) >= self.limits.max_turns:
            raise Conflict(f"A battle has at most {self.limits.max_turns} turns; start a new one.")
        if images:
            bi.check_count(self.images, images, battle.image_count)
            bi.check_follow_up(battle, self.models)

    async def _begin_turn(self, battle: LiveBattle, prompt: str, checked: Sequence[bi.Checked] = ()) -> None:
        number = len(battle.history) + 1
        turn = Turn(number, prompt, {s: Side(m) for s, m in battle.models.items()})
        # Current (and so busy) before the first await: a concurrent add_turn or vote gets 409.
        previous, battle.turn = battle.turn, turn
        try:
            await bi.save_files(self.images, checked)
            await self.store.write(
                q.add_prompt(battle.id, number, prompt, [(c.image, c.width, c.height) for c in checked])
            )
        except BaseException:
            battle.turn = previous
            raise
        if checked:
            battle.images[number] = tuple(c.image.sha256 for c in checked)
        for side in turn.sides:
            turn.sides[side].task = asyncio.create_task(self._run_side(battle, turn, side))

    def _conversation(
        self, battle: LiveBattle, side: str, prompt: str, images: dict[int, tuple[Image, ...]] | None = None
    ) -> list[ChatMessage]:
        """The side's conversation so far; each user message carries its turn's images."""
        images = images or {}
        messages: list[ChatMessage] = []
        for number, (past_prompt, answers) in enumerate(battle.history, start=1):
            messages.append(ChatMessage("user", past_prompt, images.get(number, ())))
            messages.append(ChatMessage("assistant", answers.get(side, "")))
        messages.append(ChatMessage("user", prompt, images.get(len(battle.history) + 1, ())))
        return messages

    async def _run_side(self, battle: LiveBattle, turn: Turn, side: str) -> None:
        """Generate one side's answer, store it, and tell the readers; a fault fails this side only."""
        state = turn.sides[side]
        state.running = True
        progress = _Progress()
        try:
            if state.stopped:  # stopped before this task first ran
                raise asyncio.CancelledError
            await self._generate(battle, turn, side, progress)
        except asyncio.CancelledError:
            if not state.stopped:
                raise
            state.finish_reason = "stopped"
        except Exception as exc:  # noqa: BLE001 - any engine fault fails this side, not the turn
            self._fail(battle, side, state, exc)
        finally:
            if not state.finish_reason:
                state.finish_reason = "error"
        await self._finish_side(battle, turn, side, progress)

    async def _generate(self, battle: LiveBattle, turn: Turn, side: str, progress: _Progress) -> None:
        state = turn.sides[side]
        entry = await generate.resolve(self.models, state.model)
        defaults = entry.spec.defaults
        images = await bi.load_turns(self.images, battle.images)
        request = GenerationRequest(
            request_id=f"{battle.id}-{turn.number}-{side}",
            messages=self._conversation(battle, side, turn.prompt, images),
            max_tokens=defaults.max_tokens,
            max_tokens_explicit=False,
            temperature=defaults.temperature,
            top_p=defaults.top_p,
            top_k=defaults.top_k,
            min_p=defaults.min_p,
            repeat_penalty=defaults.repeat_penalty,
        )
        if battle.mode != "direct":
            # A battle side samples (battle_temperature > 0) with a fresh secret seed, never shown
            # or stored, so /v1, chat or a regenerate cannot replay it to tell which model it is.
            request.temperature = entry.spec.battle_sampling_temperature()
            request.seed = secrets.randbits(32)
        async with asyncio.timeout(self.limits.generation_timeout):
            started = await generate.start(self.models, self.metrics, state.model, request)
            delta = started.first
            try:
                while True:
                    progress.seen(delta)
                    if delta.text:
                        state.parts.append(delta.text)
                        turn.emit(Event("delta", side, delta.text))
                    if delta.finish_reason is not None:
                        state.finish_reason = delta.finish_reason
                        break
                    delta = await anext(started.rest)
            finally:
                await started.rest.aclose()

    def _fail(self, battle: LiveBattle, side: str, state: Side, exc: Exception) -> None:
        if isinstance(exc, DomainError):  # an engine failure keeps its own message for the log
            detail = str(exc.__cause__) if isinstance(exc, Failed) and exc.__cause__ else exc.message
        elif isinstance(exc, (EngineError, TimeoutError, StopAsyncIteration)):
            detail = str(exc) or "timed out"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, TimeoutError):  # engine errors are counted where they are raised
            self.models.failed(state.model, f"no answer within {self.limits.generation_timeout:g} s")
        state.internal_error = detail
        state.error = public_error(side, battle.mode)
        state.finish_reason = "error"
        log.warning("battle %s side %s failed: %s", battle.id, side, detail)

    async def _finish_side(self, battle: LiveBattle, turn: Turn, side: str, progress: _Progress) -> None:
        """Store the answer with its style features, then emit it; the last side closes the turn."""
        state = turn.sides[side]
        answer = q.Answer(
            battle.id,
            side,
            turn.number,
            state.text,
            progress.prompt_tokens,
            progress.completion_tokens,
            progress.ttft,
            time.perf_counter() - progress.started_at,
            state.finish_reason,
            state.internal_error,
            style=style_features(state.text, progress.completion_tokens).as_tuple(),
        )
        try:
            state.message_id = await self.store.write(q.add_answer(answer))
        except Exception as exc:  # noqa: BLE001 - a store failure fails the side, not the server
            log.error("could not store answer for %s: %s", battle.id, exc)
            state.error = state.error or public_error(side, battle.mode)
        if self.identity_check and not state.error:  # flagged before the side is done, so before any vote
            await flag_if_leaked(self.store, self.models, battle.id, battle.mode, state.model, state.text)
        state.done = True
        turn.emit(Event("set", side, state.text, state.error, state.finish_reason, state.message_id, True))
        if all(s.done for s in turn.sides.values()):
            battle.history.append((turn.prompt, {s: v.text for s, v in turn.sides.items()}))
            battle.failed = battle.failed or turn.failed
            turn.emit(Event("done"))

    # -- controls -----------------------------------------------------------------------------

    async def stop(self, battle_id: str, *, client: str) -> LiveBattle:
        battle = await self.owned(battle_id, client)
        if battle.turn is not None:
            for state in battle.turn.sides.values():
                # finish_reason is set once generation is over; the answer is then being stored,
                # and cancelling that would lose it and leave the turn unfinished.
                if state.task is not None and not state.done and not state.finish_reason:
                    state.stopped = True
                    if state.running:
                        state.task.cancel()
        return battle

    async def regenerate(self, battle_id: str, *, client: str) -> LiveBattle:
        battle = await self.owned(battle_id, client)
        self.check_mode(battle.mode)
        if battle.voted:
            raise Conflict("This battle already has a vote.")
        turn = battle.turn
        if turn is None:
            raise Conflict("Nothing to regenerate yet.")
        with self._admitted(client, battle.mode, battle.models):
            if not turn.complete:
                await self.stop(battle_id, client=client)
                await turn.finished.wait()
                if battle.turn is not turn or battle.voted:
                    raise Conflict("The battle changed meanwhile; reload it.")
        # The new turn is current before the first await, so a concurrent request sees it busy.
        new = Turn(turn.number, turn.prompt, {s: Side(m) for s, m in battle.models.items()})
        answers, failed = battle.history.pop(), battle.failed
        battle.turn, battle.failed = new, False
        try:
            await self.store.write(q.drop_answers(battle.id, turn.number))
        except BaseException:
            battle.turn, battle.failed = turn, failed
            battle.history.append(answers)
            raise
        for side in new.sides:
            new.sides[side].task = asyncio.create_task(self._run_side(battle, new, side))
        return battle

    async def vote(self, battle_id: str, winner: str, voter_hash: str) -> tuple[str, str]:
        battle = await self.owned(battle_id, voter_hash)
        if battle.busy:
            raise Conflict("Both answers must be complete before voting.")
        for attempt in range(3):  # a read that trails the writer by a moment is read again
            try:
                pair = await self._record_vote(battle_id, winner, voter_hash)
                break
            except q.Changed:
                if attempt == 2:
                    raise
        battle.voted = True
        if self.on_vote is not None:
            self.on_vote()
        return pair

    async def _record_vote(self, battle_id: str, winner: str, voter_hash: str) -> tuple[str, str]:
        """Categories are computed here, for the battle as read; the store refuses if it moved on."""
        row = await q.get_battle(self.store, battle_id) if winner in q.WINNERS else None
        categories: list[str] = []
        if row:
            tokens = await q.first_prompt_tokens(self.store, battle_id)  # long prompt: the models' own count
            images = await q.get_battle_images(self.store, battle_id)
            categories = battle_categories(row["first_prompt"] or "", row["turns"], winner, tokens, vision=bool(images))
        turns = row["turns"] if row else 0
        pair: tuple[str, str] = await self.store.write(q.record_vote(battle_id, winner, voter_hash, categories, turns))
        return pair

    async def feedback(self, battle_id: str, message_id: int, kind: str, *, client: str) -> None:
        await self.owned(battle_id, client)
        if kind not in ("up", "down", "flag"):
            raise Invalid("kind must be up, down or flag")
        await self.store.write(q.add_feedback(battle_id, message_id, kind))

    # -- reading ------------------------------------------------------------------------------

    def _remember(self, battle: LiveBattle) -> None:
        self.live[battle.id] = battle
        self.live.move_to_end(battle.id)
        while len(self.live) > MAX_LIVE:
            oldest_id, oldest = next(iter(self.live.items()))
            if oldest.busy:
                break
            del self.live[oldest_id]

    async def get(self, battle_id: str) -> LiveBattle:
        battle = self.live.get(battle_id)
        if battle is not None:
            return battle
        row = await q.get_battle(self.store, battle_id)
        if row is None:
            raise NotFound("No such battle.")
        models = {"a": row["model_a"]} if row["mode"] == "direct" else {"a": row["model_a"], "b": row["model_b"]}
        battle = LiveBattle(
            row["id"],
            row["mode"],
            models,
            voted=row["status"] == "voted",
            failed=row["status"] in ("failed", "interrupted"),
            interrupted=row["status"] == "interrupted",
            owner=row["voter_hash"] or "",
        )
        prompts: dict[int, str] = {}
        answers: dict[int, dict[str, str]] = {}
        for m in await q.get_messages(self.store, battle_id):
            if m["side"] == "":
                prompts[m["turn"]] = m["content"]
            else:
                answers.setdefault(m["turn"], {})[m["side"]] = m["content"]
        battle.history = [(prompts[t], answers.get(t, {})) for t in sorted(prompts)]
        battle.images = await q.get_battle_images(self.store, battle_id)
        self._remember(battle)
        return battle

    async def owned(self, battle_id: str, client: str) -> LiveBattle:
        """The battle, for the visitor who started it (``client``, their voter hash). Anyone else
        gets the NotFound of a battle that does not exist: its existence is not told."""
        battle = await self.get(battle_id)
        if not battle.owned_by(client):
            raise NotFound("No such battle.")
        return battle

    async def image(self, battle_id: str, sha256: str, voter_hash: str, *, admin: bool = False) -> Image:
        """An image of a battle, for the battle's own visitor or an admin. Anyone else gets
        NotFound, as for an image that does not exist: its existence is not told."""
        owner = await q.image_owner(self.store, battle_id, sha256)
        if owner is None or self.images is None or not (admin or (owner and owner == voter_hash)):
            raise NotFound("No such image.")
        return await asyncio.to_thread(self.images.load, sha256)

    async def events(
        self, battle_id: str, resume: int | None = None, *, client: str
    ) -> AsyncIterator[tuple[int | None, Event]]:
        """The current turn as (event id, event) pairs.

        A new reader first gets each side's answer so far (``set`` events, no id), then live
        events. A reconnecting reader that sends the last id it saw resumes after it. A finished
        turn is replayed from memory or the store; nothing is generated again. Only for the
        battle's own visitor (``client``).
        """
        battle = await self.owned(battle_id, client)
        turn = battle.turn
        if turn is not None:
            start = resume + 1 if resume is not None else None
            if start is None:
                start, snapshot = turn.snapshot()
                for event in snapshot:
                    yield None, event
                if turn.complete:
                    return
            async for index, event in turn.follow(start):
                yield index, event
            return
        messages = [m for m in await q.get_messages(self.store, battle_id) if m["side"]]
        last_turn = max((m["turn"] for m in messages), default=0)
        for m in messages:
            if m["turn"] == last_turn:
                error = public_error(m["side"], battle.mode) if m["error"] else ""
                yield None, Event("set", m["side"], m["content"], error, m["finish_reason"] or "", m["id"], True)
        yield None, Event("done")

    async def wait(self, battle: LiveBattle) -> None:
        if battle.turn is not None:
            await battle.turn.finished.wait()

    async def close(self) -> None:
        tasks = [
            s.task
            for b in self.live.values()
            if b.turn is not None
            for s in b.turn.sides.values()
            if s.task is not None and not s.task.done()
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
