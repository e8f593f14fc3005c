"""``arena eval agreement``: the stored human battles replayed to a judge, and how often it agrees.

A replayed battle is an anonymous one with a counted vote: status ``voted`` (so no side failed) and
no flag (an identity leak or a moderation flag keeps a vote off the human board, and out of here).
The judge reads every turn's prompt and both answers, labelled Assistant A and B (never a model's
name), in both orders; as in the eval runs, the winner both orders name is its verdict, else a tie,
and a reply that does not parse leaves the battle out (counted, never guessed). Each order's reply
is cached in ``eval_verdicts`` (kind ``agreement``, suite ``human``, ``prompt_id`` the battle id)
by (judge, battle, order, template hash, judge settings), so a run started again continues where it
stopped. A vision battle (one with ``battle_images`` rows) is skipped and counted: the judge reads
text only.

The figures (:func:`figures`) compare, over the battles the judge decided: its verdict with the
vote (agreement without and with ties, Cohen's κ), and the Bradley–Terry board of its verdicts
with the board of the same battles' votes (Spearman, Kendall), each with a seeded bootstrap.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.engines.base import EngineError
from app.errors import DomainError
from app.eval.agreement import ROUNDS, label, rank_agreement, rank_json, vote_agreement
from app.eval.context import EvalContext
from app.eval.judge import judge_pair, judge_settings
from app.eval.store import verdict_key
from app.eval.templates import Template, load_template
from app.eval.verdicts import combine, swapped, winner
from app.rating.cells import aggregate_battles
from app.store.db import Store

log = logging.getLogger(__name__)

KIND = "agreement"
SUITE = "human"
Progress = Callable[[int, int], None]  # (done, total) judge replies, cached ones included
HUMAN_BATTLES_SQL = (
    "SELECT b.id, b.model_a, b.model_b, v.winner FROM battles b JOIN votes v ON v.battle_id = b.id"
    " WHERE b.mode = 'anony' AND b.status = 'voted' AND v.mode = 'anony' AND v.flags = '' AND b.model_b != ''"
    " ORDER BY b.created, b.id"
)
MESSAGES_SQL = "SELECT turn, side, content FROM messages WHERE battle_id = ? ORDER BY turn, side, id"
IMAGES_SQL = "SELECT 1 FROM battle_images WHERE battle_id = ? LIMIT 1"


@dataclass(frozen=True)
class HumanBattle:
    """One voted anonymous battle: its pair, the vote, and every turn's prompt and answers."""

    id: str
    model_a: str
    model_b: str
    winner: str  # the vote: model_a | model_b | tie | tie (bothbad)
    prompts: tuple[str, ...]
    answers_a: tuple[str, ...]
    answers_b: tuple[str, ...]
    images: bool = False  # a vision battle: the judge cannot see its images, so it is skipped


def _turns(battle_id: str, messages: Sequence[Any]) -> tuple[tuple[str, ...], ...] | None:
    """(prompts, answers of a, answers of b) by turn; None when a turn lacks a part."""
    parts: dict[int, dict[str, str]] = {}
    for m in messages:
        parts.setdefault(m["turn"], {})[m["side"]] = m["content"] or ""
    turns = [parts[t] for t in sorted(parts)]
    if not turns or any(set(t) != {"", "a", "b"} for t in turns):
        log.warning("battle %s is missing a prompt or an answer: not replayed", battle_id)
        return None
    return tuple(t[""] for t in turns), tuple(t["a"] for t in turns), tuple(t["b"] for t in turns)


async def human_battles(store: Store, limit: int = 0, seed: int = 0) -> list[HumanBattle]:
    """The battles to replay, oldest first; with ``limit``, that many drawn at random (seeded)."""
    rows = list(await store.fetchall(HUMAN_BATTLES_SQL))
    if 0 < limit < len(rows):
        picked = set(random.Random(seed).sample(range(len(rows)), limit))
        rows = [r for i, r in enumerate(rows) if i in picked]
    out = []
    for r in rows:
        turns = _turns(r["id"], await store.fetchall(MESSAGES_SQL, (r["id"],)))
        if turns is not None:
            images = await store.fetchone(IMAGES_SQL, (r["id"],)) is not None
            prompts, answers_a, answers_b = turns
            out.append(
                HumanBattle(r["id"], r["model_a"], r["model_b"], r["winner"], prompts, answers_a, answers_b, images)
            )
    return out


@dataclass
class Replayed:
    """What a replay saw. ``decided`` holds (model_a, model_b, human winner, judge winner) per battle
    the judge decided in both orders."""

    battles: int = 0  # replayed (vision battles not included)
    skipped_vision: int = 0  # battles with images, which the judge would not see: not replayed
    cached: int = 0  # judge replies reused from the cache
    judge_replies: int = 0  # new in this run
    judge_failures: int = 0  # generations that failed (retried by the next run)
    parse_failures: int = 0  # replies that held no verdict: counted, never guessed
    inconsistent: int = 0  # battles whose two orders named different winners (counted as ties)
    decided: list[tuple[str, str, str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "battles": self.battles,
            "skipped_vision": self.skipped_vision,
            "decided": len(self.decided),
            "cached": self.cached,
            "judge_replies": self.judge_replies,
            "judge_failures": self.judge_failures,
            "parse_failures": self.parse_failures,
            "inconsistent": self.inconsistent,
        }


def keys(judge: str, battle_id: str, template_hash: str, settings: dict[str, Any]) -> tuple[str, str]:
    """The two orders' cache keys: side a shown as Assistant A, then side b shown as A (``settings``:
    the judge's generation settings)."""
    a, b = f"{battle_id}:a", f"{battle_id}:b"
    return (
        verdict_key(KIND, judge, SUITE, a, b, template_hash, settings),
        verdict_key(KIND, judge, SUITE, b, a, template_hash, settings),
    )


def save_reply(
    key: str, judge: str, battle: HumanBattle, flipped: bool, template_hash: str, raw: str, verdict: str | None
) -> Any:
    """A store write: one order's reply, kept for the next run (``flipped``: side b shown as A)."""
    shown = (
        (("b", battle.model_b), ("a", battle.model_a)) if flipped else (("a", battle.model_a), ("b", battle.model_b))
    )

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO eval_verdicts (key, kind, judge, suite, prompt_id, template_hash, answer_a,"
            " answer_b, model_a, model_b, verdict, score, raw, battle_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            (key, KIND, judge, SUITE, battle.id, template_hash, f"{battle.id}:{shown[0][0]}",
             f"{battle.id}:{shown[1][0]}", shown[0][1], shown[1][1], verdict or "", raw, battle.id, time.time()),
        )  # fmt: skip

    return write


@dataclass
class _Replay:
    ctx: EvalContext
    judge: str
    template: Template
    tally: Replayed
    progress: Progress | None
    total: int
    done: int = 0

    def tick(self, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)


async def _ask(run: _Replay, battle: HumanBattle, key: str, flipped: bool) -> str | None | bool:
    """One order's verdict label (None: did not parse), or False when the judge failed."""
    a, b = (battle.answers_b, battle.answers_a) if flipped else (battle.answers_a, battle.answers_b)
    try:
        v = await judge_pair(run.ctx, run.judge, battle.prompts, a, b, run.template)
    except (DomainError, EngineError) as exc:
        log.warning("judge %s failed on battle %s: %s", run.judge, battle.id, exc)
        run.tally.judge_failures += 1
        return False
    finally:
        run.tick()
    run.tally.judge_replies += 1
    await run.ctx.store.write(save_reply(key, run.judge, battle, flipped, run.template.sha256, v.raw, v.verdict))
    return v.verdict


async def _battle(run: _Replay, battle: HumanBattle) -> None:
    first_key, second_key = keys(run.judge, battle.id, run.template.sha256, judge_settings(run.ctx))
    rows = await run.ctx.store.fetchall(
        "SELECT key, verdict FROM eval_verdicts WHERE key IN (?, ?)", (first_key, second_key)
    )
    found: dict[str, str | None | bool] = {r["key"]: r["verdict"] or None for r in rows}
    run.tally.cached += len(found)
    run.tick(len(found))
    missing = [(k, flipped) for k, flipped in ((first_key, False), (second_key, True)) if k not in found]
    replies = await asyncio.gather(*(_ask(run, battle, k, flipped) for k, flipped in missing))
    found.update({k: reply for (k, _), reply in zip(missing, replies, strict=True)})
    first, second = found[first_key], found[second_key]
    if first is False or second is False:
        return  # a judge failure: not decided, and not cached either
    assert not isinstance(first, bool) and not isinstance(second, bool)
    run.tally.parse_failures += (first is None) + (second is None)
    decided = combine(first, second)
    if decided is None or first is None or second is None:
        return
    run.tally.inconsistent += winner(first) != winner(swapped(second))
    run.tally.decided.append((battle.model_a, battle.model_b, battle.winner, decided))


async def replay(
    ctx: EvalContext, judge: str, battles: Sequence[HumanBattle], progress: Progress | None = None
) -> Replayed:
    """Every battle to ``judge`` in both orders (cached replies reused); what it decided. A battle
    with images is skipped (counted): the judge reads text only, and would judge answers about
    images it never saw."""
    text_only = [b for b in battles if not b.images]
    tally = Replayed(len(text_only), skipped_vision=len(battles) - len(text_only))
    run = _Replay(ctx, judge, load_template("pairwise", ctx.templates), tally, progress, 2 * len(text_only))
    async with asyncio.TaskGroup() as group:
        for battle in text_only:
            group.create_task(_battle(run, battle))
    return run.tally


def figures(tally: Replayed, *, rounds: int = ROUNDS, seed: int = 0) -> dict[str, Any]:
    """The agreement figures with bootstrap intervals, as JSON (see the module docstring)."""
    a = [d[0] for d in tally.decided]
    b = [d[1] for d in tally.decided]
    human = [d[2] for d in tally.decided]
    judged = [d[3] for d in tally.decided]
    votes = vote_agreement([label(w) for w in human], [label(w) for w in judged], rounds=rounds, seed=seed)
    ranks = rank_agreement(
        aggregate_battles(a, b, human), aggregate_battles(a, b, judged), rounds=min(rounds, 200), seed=seed
    )
    return {
        "tally": tally.summary(),
        "agreement_without_ties": votes.without_ties.as_dict(),
        "agreement_with_ties": votes.with_ties.as_dict(),
        "cohen_kappa": votes.kappa.as_dict(),
        **{f"rank_{k}": v for k, v in rank_json(ranks).items()},
        "rounds": rounds,
        "seed": seed,
    }
