"""Identity leaks: an anonymous battle's answer that names its own model.

LMArena discards such votes: once a model says who it is, the voter is no longer blind. The names
come from the models file (so an admin edits them there or through the admin API):

- **Anywhere** in the answer: the model's ``metadata.family`` (e.g. Gemma), every
  ``metadata.aliases`` entry, and its display ``name`` when one is set.
- **Only in a self-reference**: ``metadata.organization`` and the id's stem (its leading run of
  letters, e.g. ``gemma`` for ``gemma-3-270m-greedy``). These are often ordinary words (an
  organization "Meta", a test model "alpha"), so they count only in a self-reference, never
  followed by a possessive (``As Google's documentation explains`` is not one):

  - right after "I am", "I'm", "my name is" or "call me" (``I am Meta AI``); after "I am a/an/the"
    only when a kind of model follows (``I am a Google model``, not ``I'm the Google fan``);
  - after "As" at the start of a sentence or line (an optional "a", "an" or "the" between) when the
    first person follows: ``As Gemma, I ...``, ``As a Google model, my ...``, but not ``As Google
    announced in 2023, ...``;
  - after "made/created/trained/developed/built/designed by" in the clause of an "I am/I'm/I was/
    I have been": no other "I" between, a comma only right before the verb (``I was trained by
    Google``, ``I am a language model, trained by Google``, but not ``Android was developed by
    Google`` or ``When I was a student I used Gmail, built by Google``).

Matching is case-insensitive on whole words: a name is not found inside a longer word, though a
digit may follow it ("Gemma3") and so may a possessive ("Google's"); spaces in a name match any
run of whitespace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from app.registry.core import Registry, UnknownModel
from app.registry.spec import ModelSpec
from app.store.db import Store
from app.store.flags import flag_battle

log = logging.getLogger(__name__)

_END = r"(?![^\W\d_])"  # a name ends where no letter follows: "Gemma3" and "Google's" match, "gemmas" not
MIN_LENGTH = 3  # shorter names ("AI", "X") are too common to mean anything
_ARTICLE = r"(?:(?:a|an|the)\s+)?"
_VERB = r"(?:made|created|trained|developed|built|designed)"
_KIND = r"(?:large\s+)?(?:language\s+model|model|assistant|AI|chatbot)"
# What comes right before a self-only name (see the module docstring). "As" only where a sentence or
# line starts ("companies such as Google" is not a self-reference); an article after "I am" only
# before a kind of model ("I'm the Google fan" is not one); "... by" only in the clause of the
# "I am": no other "I" in between, a comma only right before the verb.
SELF_REFERENCE = (
    r"(?:\bI(?:\s+am|['’]m)\s+(?:(?P<article>a|an|the)\s+)?"
    r"|\bmy\s+name\s+is\s+|\bcall\s+me\s+"
    rf"|(?:^|(?<=[.!?]))[ \t]*(?P<as_>as)\s+{_ARTICLE}"
    r"|\bI(?:\s+am|['’]m|\s+was|\s+have\s+been|['’]ve\s+been)\b(?:(?!\bI\b)[^.!?\n,]){0,80}?,?\s*"
    rf"\b{_VERB}\s+by\s+(?:the\s+)?)"
)
# What must follow a self-only name: never a possessive ("As Google's documentation explains");
# after "As", the first person ("As a Google model, I ..."); after "I am a", a kind of model.
SELF_AFTER = (
    r"(?!['’]s\b)"
    rf"(?(as_)(?:\s+(?:{_KIND}|\d[\w.]*))*\s*,?\s*(?:I|I['’]m|my|we)\b)"
    rf"(?(article)\s+{_KIND}\b)"
)


@dataclass(frozen=True)
class Identity:
    """The names that give a model away: ``anywhere`` in an answer, or ``self_only`` in a
    self-reference (see the module docstring)."""

    anywhere: tuple[str, ...] = ()
    self_only: tuple[str, ...] = ()


def id_stem(model_id: str) -> str:
    """The id's leading run of letters: ``gemma-3-270m-greedy`` -> ``gemma``, ``qwen2.5`` -> ``qwen``."""
    match = re.match(r"[A-Za-z]+", model_id)
    return match.group(0) if match else ""


def _names(values: Iterable[str]) -> tuple[str, ...]:
    """Stripped names of at least MIN_LENGTH characters, each once (case-insensitively)."""
    seen: dict[str, str] = {}
    for value in values:
        name = " ".join(value.split())
        if len(name) >= MIN_LENGTH:
            seen.setdefault(name.casefold(), name)
    return tuple(seen.values())


def identity_of(spec: ModelSpec, extra_aliases: Iterable[str] = ()) -> Identity:
    """The names of ``spec``'s model from its models-file entry, plus ``extra_aliases``."""
    meta = spec.metadata
    anywhere = _names([meta.family, *meta.aliases, *extra_aliases, spec.name])
    taken = {n.casefold() for n in anywhere}
    self_only = tuple(n for n in _names([meta.organization, id_stem(spec.id)]) if n.casefold() not in taken)
    return Identity(anywhere, self_only)


def _alternatives(names: tuple[str, ...]) -> str:
    # longest first, so "Gemma 3" wins over "Gemma" and the reported match is the whole name
    parts = [r"\s+".join(re.escape(word) for word in name.split()) for name in sorted(names, key=len, reverse=True)]
    return "|".join(parts)


@lru_cache(maxsize=256)
def _pattern(identity: Identity) -> re.Pattern[str] | None:
    branches = []
    if identity.anywhere:
        branches.append(rf"(?<!\w)(?P<name>{_alternatives(identity.anywhere)}){_END}")
    if identity.self_only:
        branches.append(rf"{SELF_REFERENCE}(?P<self>{_alternatives(identity.self_only)}){_END}{SELF_AFTER}")
    if not branches:
        return None
    return re.compile("|".join(branches), re.IGNORECASE | re.MULTILINE)


def find_leak(text: str, identity: Identity) -> str | None:
    """The first name in ``text`` that gives the model away (as written there), or None."""
    pattern = _pattern(identity)
    match = pattern.search(text) if pattern is not None else None
    if match is None:
        return None
    found = match.groupdict()  # a model with no anywhere (or no self-only) names has no such group
    return found.get("name") or found.get("self")


async def flag_if_leaked(store: Store, models: Registry, battle_id: str, mode: str, model_id: str, text: str) -> bool:
    """In an anonymous battle, flag the battle "identity" when ``text`` (one side's stored answer)
    names ``model_id``'s own model; its vote then stays off the default board. True when flagged.

    A model no longer in the registry is not checked; a failed flag write is logged, never raised
    (the answer is stored and the battle goes on)."""
    if mode != "anony" or not text:
        return False
    try:
        spec = models.get(model_id).spec
    except UnknownModel:
        return False
    leak = find_leak(text, identity_of(spec))
    if leak is None:
        return False
    try:
        await store.write(flag_battle(battle_id, "identity"))
    except Exception as exc:  # noqa: BLE001 - the check must not fail the answer
        log.error("could not flag battle %s for an identity leak: %s", battle_id, exc)
        return False
    log.info("battle %s: %s named itself (%r); its vote stays off the default board", battle_id, model_id, leak)
    return True
