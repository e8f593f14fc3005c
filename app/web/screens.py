"""What each screen's template gets: a typed context, built by one function per screen.

A route builds the context and hands it to :func:`app.web.views.page` (the whole page) or
:func:`app.web.views.fragment` (one named block for htmx to swap). Templates read fields; they
call no methods on services. The builders take plain inputs, so tests call them without HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from app.arena.battle_images import follow_up_refusal, sees
from app.arena.live import LiveBattle
from app.arena.service import Limits
from app.registry.core import ModelEntry, Registry
from app.web.render import answer_html

MB = 1024 * 1024

# mode -> (template, nav tab, the start page's URL)
ARENA_SCREENS = {
    "anony": ("battle.html", "battle", "/"),
    "named": ("compare.html", "compare", "/compare"),
    "direct": ("chat.html", "chat", "/chat"),
}


@dataclass(frozen=True)
class ModelChoice:
    """A model the visitor may pick in a start form."""

    id: str
    name: str
    vision: bool = False  # takes images


@dataclass(frozen=True)
class ImageUpload:
    """The image picker of a prompt form: how many images the next prompt may carry (0: no
    picker) and the size limit, as hints; the server checks both again."""

    slots: int = 0
    max_bytes: int = 0
    accept: str = "image/png,image/jpeg,image/webp"


@dataclass(frozen=True)
class BattleView:
    """What a battle's blocks need besides the battle: revealed names, limits, the way back."""

    reveal: dict[str, str]  # side -> display name, once the models may be named
    new_url: str
    max_turns: int
    max_prompt_chars: int
    upload: ImageUpload = field(default_factory=ImageUpload)
    owner: bool = True  # the visitor who started the battle; anyone else gets it read-only


@dataclass(frozen=True)
class ArenaScreen:
    """battle.html, compare.html and chat.html, and their ``arena`` block."""

    template: str
    nav: str
    mode: str
    battle: LiveBattle | None
    view: BattleView
    models: list[ModelChoice] = field(default_factory=list)
    arena_size: int = 0  # models an anonymous battle may draw (active, servable, weight above 0)
    add_model_url: str = ""  # the page on adding your own model


def arena_size(eligible: Sequence[tuple[str, float]]) -> int:
    """How many models an anonymous battle may draw, from :meth:`app.arena.service.Arena.eligible`
    (a model with weight 0 is never drawn)."""
    return sum(1 for _, weight in eligible if weight > 0)


def display_names(models: Registry) -> dict[str, str]:
    return {e.id: e.spec.display_name for e in models.all()}


def battle_view(
    battle: LiveBattle | None,
    mode: str,
    names: Mapping[str, str],
    limits: Limits,
    upload: ImageUpload | None = None,
    owner: bool = True,
) -> BattleView:
    """The models are named once the vote is in, or from the start outside anonymous battles."""
    reveal: dict[str, str] = {}
    if battle is not None and (battle.voted or battle.mode != "anony"):
        reveal = {side: names.get(model_id, model_id) for side, model_id in battle.models.items()}
    return BattleView(
        reveal, ARENA_SCREENS[mode][2], limits.max_turns, limits.max_prompt_chars, upload or ImageUpload(), owner
    )


def image_upload(battle: LiveBattle | None, models: Registry, per_conversation: int, max_bytes: int) -> ImageUpload:
    """A start form may take ``per_conversation`` images; a follow-up what is left of them, when
    the arena would take one there (see :func:`app.arena.battle_images.follow_up_refusal`)."""
    slots = per_conversation
    if battle is not None:
        slots = 0 if follow_up_refusal(battle, models) else per_conversation - battle.image_count
    return ImageUpload(max(0, slots), max_bytes)


def arena_screen(
    mode: str,
    battle: LiveBattle | None,
    models: Registry,
    limits: Limits,
    images_per_conversation: int = 0,
    image_max_bytes: int = 0,
    drawable: int = 0,
    owner: bool = True,
) -> ArenaScreen:
    """A start page (no battle yet) or one battle, for the screen of ``mode``; the image picker
    shows when the arena takes images (``images_per_conversation`` > 0); ``drawable``: see
    :func:`arena_size`. A battle is read-only for anyone but its ``owner``. The pickers offer no
    ``anony_only`` model."""
    template, nav, _ = ARENA_SCREENS[mode]
    choices = [
        ModelChoice(e.id, e.spec.display_name, sees(e))
        for e in models.servable()
        if e.state != "down" and not e.spec.anony_only
    ]
    upload = image_upload(battle, models, images_per_conversation, image_max_bytes)
    view = battle_view(battle, mode, display_names(models), limits, upload, owner)
    return ArenaScreen(template, nav, mode, battle, view, choices, drawable, DOCS["add-a-model"].url)


@dataclass(frozen=True)
class Doc:
    """A page of the documentation: a Markdown file in app/web/docs/, which README.md holds too,
    under a heading of the same title between ``<!-- docs:NAME:begin/end -->`` markers
    (tests/test_docs.py checks), so the page is there offline and in any install."""

    file: str
    url: str
    title: str


DOCS_DIR = Path(__file__).parent / "docs"
DOCS = {"add-a-model": Doc("add-a-model.md", "/docs/add-a-model", "Add your own model")}


@dataclass(frozen=True)
class DocScreen:
    """doc.html: a page of the documentation, rendered from its Markdown file."""

    title: str
    html: str
    nav: str = ""


@lru_cache(maxsize=len(DOCS))
def doc_screen(name: str) -> DocScreen:
    doc = DOCS[name]
    return DocScreen(doc.title, answer_html((DOCS_DIR / doc.file).read_text()))


@dataclass(frozen=True)
class ModelRow:
    """One row of the admin table."""

    id: str
    name: str
    engine: str
    state: str
    loaded: bool
    error: str
    weight: float
    memory_mb: float
    queue_depth: int
    tokens_per_second: float
    errors: int
    actions: list[str]
    vision: bool = False  # takes images (models file and engine)
    battles: str = "yes"  # drawn into anonymous battles: "yes", or "no (why)"


def in_battles(entry: ModelEntry) -> str:
    """Whether anonymous battles draw the model: "yes", or "no (why)" (the CLI shows it too)."""
    if not entry.spec.battle:
        return "no (battle = false)"
    return "yes" if entry.state == "active" else f"no ({entry.state})"


@dataclass(frozen=True)
class AdminScreen:
    """admin.html: the sign-in form (``login``), or the models table and its ``table`` block."""

    nav: str = "admin"
    login: bool = False
    enabled: bool = True  # an admin token is configured
    models: list[ModelRow] = field(default_factory=list)
    memory_in_use_mb: int = 0
    memory_budget_mb: int = 0
    error: str = ""


def model_row(entry: ModelEntry) -> ModelRow:
    d = entry.describe()
    actions = ["resume" if d["state"] == "paused" else "pause", "unload" if d["loaded"] else "load", "remove"]
    return ModelRow(
        d["id"],
        d["name"],
        d["engine"],
        d["state"],
        d["loaded"],
        d["error"] or "",
        d["weight"],
        d["memory_mb"],
        d["queue_depth"],
        d["tokens_per_second"],
        d["errors"],
        actions,
        sees(entry),
        in_battles(entry),
    )


def admin_screen(models: Registry, error: str = "") -> AdminScreen:
    return AdminScreen(
        models=[model_row(e) for e in models.all()],
        memory_in_use_mb=int(round(models.memory_in_use() / MB, 0)),
        memory_budget_mb=int(round(models.memory_budget / MB, 0)),
        error=error,
    )


def admin_login_screen(enabled: bool) -> AdminScreen:
    return AdminScreen(login=True, enabled=enabled)
