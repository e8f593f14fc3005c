"""A GGUF file's own chat template: ``chat_format = "auto"``.

The file's ``tokenizer.chat_template`` (Jinja, as in a Hugging Face tokenizer) is rendered in
Jinja2's immutable sandbox, the way llama-server's ``--jinja`` renders it: the variables are
``messages``, ``add_generation_prompt`` (always true: the prompt ends where the answer begins),
``bos_token`` and ``eos_token`` (the texts of the file's BOS and EOS tokens), ``tools`` (None until
the /v1 tools work passes them), ``raise_exception`` and ``strftime_now``.

- **Checked at load.** A template that does not compile, or raises on a probe conversation
  (system, user, assistant, user), is a :class:`ChatTemplateError` naming the file, so the model
  is refused when it loads, never with a 500 at request time. A conversation that passes the probe
  but that the template still refuses (roles that do not alternate, say) is the client's
  :class:`~app.errors.Invalid`.
- **System turns.** A template that fails on a system turn, or drops its text, gets the system text
  in front of the first user turn instead (as llama-server does for such templates).
- **BOS once.** When the tokenizer puts BOS in front of every prompt itself, a rendered prompt that
  starts with the BOS text loses it, so the model sees one BOS, not two.
- **Stops.** The texts of the file's EOS and end-of-turn tokens, plus the special tokens the template
  itself writes between turns (a model that starts a new turn has finished its answer). The engine
  also stops on every token llama.cpp counts as end of generation.
- **No template.** :data:`FALLBACK` (ChatML, llama.cpp's own fallback), with a warning naming the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.engines.base import ChatMessage, EngineError
from app.engines.chat_formats import FORMATS, Prompt
from app.errors import Invalid

log = logging.getLogger(__name__)

AUTO = "auto"
FALLBACK = "chatml"  # for a file without a template; llama.cpp falls back to ChatML too
CHAT_FORMATS = (AUTO, *FORMATS)

Format = Callable[[Sequence[ChatMessage]], Prompt]
SpecialPieces = Callable[[str], Sequence[str]]  # text -> the special tokens in it, as text

PROBE = (
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "Hello."),
    ChatMessage("assistant", "Hi! How can I help?"),
    ChatMessage("user", "What is the capital of France?"),
)
NEEDLE = "<<system text for the probe>>"


@dataclass(frozen=True, slots=True)
class TemplateSource:
    """What a GGUF file says about its chat: its template and the texts of its special tokens."""

    name: str  # the file's name, for messages
    template: str  # tokenizer.chat_template; "" when the file has none
    bos_token: str = ""
    eos_token: str = ""
    end_of_turn: tuple[str, ...] = ()  # the texts of its EOS and end-of-turn (EOT) tokens
    adds_bos: bool = False  # its tokenizer puts BOS in front of every prompt by itself


class ChatTemplateError(EngineError):
    """A chat template that does not compile or does not render the probe conversation."""


class _Raised(Exception):
    """The template called ``raise_exception``."""


def _raise_exception(message: str) -> None:
    raise _Raised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """JSON as Hugging Face's chat templates expect it (Jinja's own ``tojson`` escapes HTML)."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _Generation(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` (training templates mark answers with it) renders its body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> Any:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, _Generation]
    )
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    return env


def _why(exc: BaseException) -> str:
    lineno = getattr(exc, "lineno", None)  # a TemplateSyntaxError's
    line = f" (line {lineno})" if lineno else ""
    return f"{type(exc).__name__}{line}: {exc}" if not isinstance(exc, _Raised) else f"it raised: {exc}"


class ChatTemplate:
    """A file's chat template, compiled and probed. Call it with messages (and ``tools``) for a :class:`Prompt`."""

    def __init__(self, source: TemplateSource, special_pieces: SpecialPieces | None = None) -> None:
        self.source = source
        try:
            self._template = _environment().from_string(source.template)
        except Exception as exc:  # noqa: BLE001 - any compile failure is the file's
            raise ChatTemplateError(f"the chat template of {source.name} does not compile: {_why(exc)}") from None
        self.system_role = self._keeps_system()
        try:
            probe = self.text(PROBE)
        except Exception as exc:  # noqa: BLE001
            raise ChatTemplateError(
                f"the chat template of {source.name} does not render a system, user, assistant, user "
                f"conversation: {_why(exc)}"
            ) from None
        markers = tuple(special_pieces(probe)) if special_pieces else ()
        stops = [*source.end_of_turn, *markers]
        self.stop = tuple(dict.fromkeys(s for s in stops if s))

    def _keeps_system(self) -> bool:
        try:
            return NEEDLE in self._render([{"role": "system", "content": NEEDLE}, {"role": "user", "content": "Hi"}])
        except Exception:  # noqa: BLE001 - no system role; the full probe decides whether it is usable
            return False

    def _render(self, messages: list[dict[str, Any]], tools: Sequence[Any] | None = None) -> str:
        return str(
            self._template.render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=self.source.bos_token,
                eos_token=self.source.eos_token,
                tools=list(tools) if tools is not None else None,
            )
        )

    def _dicts(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        turns = [{"role": "system" if m.role == "developer" else m.role, "content": m.content} for m in messages]
        if self.system_role:
            return turns
        system = "\n\n".join(t["content"] for t in turns if t["role"] == "system")
        turns = [t for t in turns if t["role"] != "system"]
        if system:
            first = next((t for t in turns if t["role"] == "user"), None)
            if first is None:
                turns.insert(0, {"role": "user", "content": system})
            else:
                first["content"] = f"{system}\n\n{first['content']}"
        return turns

    def text(self, messages: Sequence[ChatMessage], tools: Sequence[Any] | None = None) -> str:
        """The rendered prompt (raises what the template raises)."""
        text = self._render(self._dicts(messages), tools)
        bos = self.source.bos_token
        if self.source.adds_bos and bos and text.startswith(bos):
            text = text[len(bos) :]  # the tokenizer adds it
        return text

    def __call__(self, messages: Sequence[ChatMessage], tools: Sequence[Any] | None = None) -> Prompt:
        try:
            return Prompt(self.text(messages, tools), self.stop)
        except Exception as exc:  # noqa: BLE001 - the template refused this conversation
            raise Invalid(
                f"the chat template of {self.source.name} refused these messages: {_why(exc)}", param="messages"
            ) from None


def format_for(name: str, source: TemplateSource, special_pieces: SpecialPieces | None = None) -> Format:
    """The turn format ``chat_format = name`` stands for on a file: a named one, the file's own
    template for ``auto``, or :data:`FALLBACK` (with a warning) when the file has none."""
    if name == AUTO:
        if source.template:
            return ChatTemplate(source, special_pieces)
        log.warning(
            "%s has no chat template (tokenizer.chat_template): chat_format auto falls back to %s",
            source.name,
            FALLBACK,
        )
        return FORMATS[FALLBACK]
    if name not in FORMATS:
        raise ValueError(f"unknown chat_format {name!r}; known: {', '.join(CHAT_FORMATS)}")
    return FORMATS[name]
