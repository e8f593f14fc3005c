"""Live turns: both sides generate as independent tasks and append events to one log that any
number of readers follow (and a reconnecting reader replays). Neither side waits for the other.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["delta", "set", "done"]


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    side: str = ""
    text: str = ""  # "delta": new text; "set": the whole answer so far
    error: str = ""  # public error message of a failed side
    finish_reason: str = ""
    message_id: int | None = None
    finished: bool = False  # "set": this side's answer is complete


@dataclass
class Side:
    model: str
    parts: list[str] = field(default_factory=list)
    done: bool = False
    finish_reason: str = ""
    error: str = ""  # what the visitor sees
    internal_error: str = ""  # what is stored (may name the model)
    stopped: bool = False
    running: bool = False  # its task has started (a task cancelled before that never runs at all)
    task: asyncio.Task[None] | None = None
    message_id: int | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Turn:
    """One turn's event log. Readers follow it from the start, so a late reader replays."""

    def __init__(self, number: int, prompt: str, sides: dict[str, Side]) -> None:
        self.number = number
        self.prompt = prompt
        self.sides = sides
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self.finished = asyncio.Event()

    def emit(self, event: Event) -> None:
        self.events.append(event)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if event.kind == "done":
            self.finished.set()

    @property
    def complete(self) -> bool:
        return self.finished.is_set()

    @property
    def failed(self) -> bool:
        return any(s.error for s in self.sides.values())

    def snapshot(self) -> tuple[int, list[Event]]:
        """Each side's answer so far, and the index of the next event (taken atomically)."""
        events = [
            Event("set", name, side.text, side.error, side.finish_reason, side.message_id, side.done)
            for name, side in self.sides.items()
        ]
        if self.complete:
            events.append(Event("done"))
        return len(self.events), events

    async def follow(self, start: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """(index, event) pairs from ``start`` on, until the turn's ``done``."""
        index = start
        while True:
            changed = self._changed
            while index < len(self.events):
                event = self.events[index]
                index += 1
                yield index - 1, event
                if event.kind == "done":
                    return
            if self.complete:
                return
            await changed.wait()


@dataclass
class LiveBattle:
    id: str
    mode: str
    models: dict[str, str]  # side -> model id
    history: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (prompt, answers)
    images: dict[int, tuple[str, ...]] = field(default_factory=dict)  # turn number -> its images' sha256
    turn: Turn | None = None
    voted: bool = False
    failed: bool = False
    interrupted: bool = False  # the server died mid-turn (app.store.recovery); never votable
    owner: str = ""  # the voter hash of the visitor who started it: only they act on it

    def owned_by(self, client: str) -> bool:
        return bool(client) and hmac.compare_digest(self.owner.encode(), client.encode())

    @property
    def sides(self) -> list[str]:
        return list(self.models)

    @property
    def turn_count(self) -> int:
        return len(self.history) + (1 if self.turn is not None and not self.turn.complete else 0)

    @property
    def image_count(self) -> int:
        return sum(len(hashes) for hashes in self.images.values())

    @property
    def busy(self) -> bool:
        return self.turn is not None and not self.turn.complete
