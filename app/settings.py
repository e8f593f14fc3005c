"""One typed settings object, read from (lowest to highest precedence) its defaults, an optional
TOML file, ``ARENA_*`` environment variables and command-line flags.

Every field has a one-line description; the CLI help and the README's configuration table are
generated from them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "ARENA_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    models: Path | None = Field(None, description="Models TOML file; the embedded default (bundled Gemma) when unset.")
    db: Path = Field(Path("arena.db"), description="SQLite database file.")
    api_key: list[str] = Field(
        default_factory=list,
        description="API keys that protect /v1 (repeat the flag, or comma-separate in env); each at least 16 "
        "characters, an empty one is no key.",
    )
    admin_token: str | None = Field(
        None,
        description="Token for /admin and /api/v1/admin, at least 16 characters; admin is off when unset or empty.",
    )
    max_body_bytes: int = Field(
        21_000_000, gt=0, description="Largest request body accepted (a 15 MB image is 20 MB as base64 in JSON)."
    )
    parallel: int = Field(2, ge=1, description="Streams each model runs at once.")
    max_queue: int = Field(16, ge=0, description="Requests that may wait per model before 503.")
    threads: int = Field(0, ge=0, description="CPU threads for llama.cpp; 0 means all cores.")
    secret: str = Field(
        "", description="Secret for CSRF tokens and voter hashes; generated once and kept in the db when unset."
    )
    max_prompt_chars: int = Field(8000, gt=0, description="Longest battle prompt in characters.")
    max_turns: int = Field(8, ge=1, description="Most turns in one battle.")
    battle_rate: str = Field("30/60", description="New battles allowed per IP: COUNT/SECONDS.")
    vote_rate: str = Field("60/60", description="Votes allowed per IP: COUNT/SECONDS.")
    generation_rate: str = Field(
        "60/60",
        description="Generations one client may start, over all models: COUNT/SECONDS (each battle side, "
        "turn, regenerate, chat answer and /v1 request counts).",
    )
    model_rate: str = Field("30/60", description="Generations one client may start on one model: COUNT/SECONDS.")
    login_rate: str = Field("5/60", description="Admin login attempts allowed per IP: COUNT/SECONDS.")
    feedback_rate: str = Field("60/60", description="Feedback clicks (good, bad, flag) allowed per IP: COUNT/SECONDS.")
    stop_rate: str = Field("60/60", description="Stop requests allowed per IP: COUNT/SECONDS.")
    admin_session_hours: float = Field(12.0, gt=0, description="Hours an admin login session lasts.")
    remote_env_prefix: str = Field(
        "ARENA_REMOTE_",
        min_length=1,
        description="Remote models' api_key_env must start with this; other environment variables are refused.",
    )
    modes: list[str] = Field(
        default_factory=list,
        description="Modes open to visitors: anony, named (side by side), chat (repeat the flag, or comma-separate); "
        "all three when unset, anony alone with --api-key (a named battle or a chat is /v1 by another door).",
    )
    remote_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (host or host:port) remote models may be served from, besides those of the models "
        "file at start; any other base_url is refused.",
    )
    trusted_proxies: list[str] = Field(default_factory=list, description="Proxy IPs whose X-Forwarded-For is believed.")
    generation_timeout: float = Field(300.0, gt=0, description="Seconds one battle answer may take before it fails.")
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's headers (new or kept-alive connection)."
    )
    body_timeout: float = Field(
        60.0, gt=0, description="Seconds a client has to send a request's whole body once its headers are in."
    )
    max_connections_per_client: int = Field(
        64, ge=1, description="Open connections one address may hold (trusted proxies excepted); more get 429."
    )
    max_streams_per_client: int = Field(
        16, ge=1, description="Event streams (battle SSE, streamed /v1) one client may hold open; more get 429."
    )
    model_dir: list[str] = Field(
        default_factory=lambda: ["models"],
        description="Folders that runtime-added weights must lie in (repeat the flag).",
    )
    memory_budget_mb: int = Field(0, ge=0, description="RAM for loaded models in MB; 0 means 85% of physical memory.")
    keep_alive: float = Field(0.0, ge=0, description="Seconds an idle model stays loaded; 0 keeps models loaded.")
    check_engines: bool = Field(
        True, description="Before serving a GGUF model, generate one token in a child process; a crash marks it down."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    provisional_votes: int = Field(
        30, ge=0, description="Leaderboard: models with fewer votes than this in overall are marked provisional."
    )
    suites_dir: Path = Field(
        Path("suites"), description="Folder of prompt suites (JSONL); `arena suites import` fills it."
    )
    judge_templates: Path | None = Field(
        None, description="Folder of judge templates (pairwise.txt, single.txt, single_ref.txt) over the shipped ones."
    )
    identity_check: bool = Field(
        True,
        description="Flag an anonymous battle whose answer names its own model (family, aliases, name; "
        "organization only as a self-reference): its vote stays off the default board.",
    )
    image_dir: Path | None = Field(
        None, description="Folder of uploaded images, stored by hash; next to the database (<db>.images) when unset."
    )
    image_max_mb: float = Field(15.0, gt=0, description="Largest image accepted, in MB (PNG, JPEG or WebP).")
    image_long_edge: int = Field(1024, ge=16, description="Images are resized so their longer side is at most this.")
    images_per_conversation: int = Field(1, ge=0, description="Most images in one battle or one /v1 request.")
    image_url_domains: list[str] = Field(
        default_factory=list,
        description="Domains /v1 may fetch https image URLs from (exact hosts); empty refuses every remote URL.",
    )
    moderation: list[str] = Field(
        default_factory=list,
        description="Content checks every prompt and image passes before generation, in order: words, model, "
        "remote (repeat the flag, or comma-separate in env); off when empty.",
    )
    moderation_words: list[str] = Field(
        default_factory=list,
        description="Blocked words or phrases for the words check (whole words, any case; 're:' starts a regex).",
    )
    moderation_words_file: Path | None = Field(
        None, description="A file of blocked words for the words check: one a line, '#' comments, 're:' regexes."
    )
    moderation_model: str = Field(
        "", description="The model the model check asks (an id of the models file; give it weight = 0)."
    )
    moderation_prompt: Path | None = Field(
        None,
        description="The model check's prompt template ({prompt} is the text); re-read when edited. "
        "The shipped app/moderation/prompt.txt when unset.",
    )
    moderation_url: str = Field(
        "", description="Base URL of an OpenAI-style moderation API for the remote check (POST URL/moderations)."
    )
    moderation_remote_model: str = Field(
        "omni-moderation-latest", description="Model name sent to the remote moderation API."
    )
    moderation_key_env: str = Field(
        "", description="Environment variable with the remote moderation API key; must start with --remote-env-prefix."
    )
    moderation_timeout: float = Field(10.0, gt=0, description="Seconds the model or remote check may take.")
    moderation_fail_open: bool = Field(
        False,
        description="Let a prompt through when a check fails or its answer does not parse; by default it is "
        "refused (503) and nothing is generated.",
    )

    @field_validator("moderation")
    @classmethod
    def _moderation(cls, value: list[str]) -> list[str]:
        kinds = [v.strip().lower() for v in value if v.strip()]
        unknown = [k for k in kinds if k not in MODERATION_KINDS]
        if unknown:
            raise ValueError(f"unknown check {unknown[0]!r}; the checks are {', '.join(MODERATION_KINDS)}")
        return list(dict.fromkeys(kinds))

    @field_validator(
        "battle_rate", "vote_rate", "generation_rate", "model_rate", "login_rate", "feedback_rate", "stop_rate"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("modes")
    @classmethod
    def _modes(cls, value: list[str]) -> list[str]:
        modes = [m.strip().lower() for v in value for m in v.split(",") if m.strip()]
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown mode {unknown[0]!r}; the modes are {', '.join(MODES)}")
        return list(dict.fromkeys(modes))

    @property
    def open_modes(self) -> tuple[str, ...]:
        """The modes visitors may use: --modes, else every mode, or anony alone when /v1 needs a key."""
        if self.modes:
            return tuple(self.modes)
        return ("anony",) if self.api_key else MODES

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: str | None) -> str | None:
        """Empty (an unset compose variable, say) is no token: admin stays off."""
        value = (value or "").strip()
        return check_secret(value) if value else None

    @field_validator("api_key")
    @classmethod
    def _api_keys(cls, value: list[str]) -> list[str]:
        return [check_secret(k) for k in (v.strip() for v in value) if k]

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        return value.lower()


LOG_LEVELS = ("debug", "info", "warning", "error")
MIN_SECRET_CHARS = 16


def check_secret(value: str) -> str:
    """A token or key long enough not to be guessed; the message does not echo it."""
    if len(value) < MIN_SECRET_CHARS:
        raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters (this one has {len(value)})")
    return value


MODERATION_KINDS = ("words", "model", "remote")
MODES = ("anony", "named", "chat")  # the arena calls chat "direct"


def parse_rate(spec: str) -> tuple[int, float]:
    """'COUNT/SECONDS' -> (count, seconds); both positive."""
    count, _, seconds = spec.partition("/")
    try:
        n, s = int(count), float(seconds or 60)
    except ValueError:
        raise ValueError(f"a rate looks like COUNT/SECONDS (e.g. 30/60), not {spec!r}") from None
    if n <= 0 or not s > 0 or s == float("inf"):
        raise ValueError(f"a rate needs a positive COUNT and SECONDS, not {spec!r}")
    return n, s


LIST_FIELDS = {name for name, f in Settings.model_fields.items() if f.annotation == list[str]}


class SettingsError(ValueError):
    pass


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        values[name] = [p.strip() for p in raw.split(",") if p.strip()] if name in LIST_FIELDS else raw
    return values


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read config file {path}: {exc}") from exc
    table = data.get("arena", data)
    return {k.replace("-", "_"): v for k, v in table.items()}


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge defaults < TOML file < environment < CLI flags (``None`` CLI values are skipped)."""
    env = env or {}
    config_file = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else None)
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(_from_toml(config_file))
    merged.update(_from_env(env))
    merged.update({k: v for k, v in (cli or {}).items() if v is not None and v != []})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise SettingsError(one_line(exc)) from None


def one_line(exc: ValidationError) -> str:
    """A validation error as one line naming each bad flag: ``--battle-rate: a rate looks like ...``."""
    parts = []
    for error in exc.errors(include_url=False):
        name = "--" + "-".join(str(p) for p in error["loc"]).replace("_", "-")
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if error["loc"] else message)
    return "; ".join(parts)


def describe() -> list[tuple[str, str, str, str]]:
    """(flag, env var, default, description) for each setting: the docs' single source."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        if isinstance(default, list):
            default = ", ".join(default)
        rows.append(
            (
                "--" + name.replace("_", "-"),
                ENV_PREFIX + name.upper(),
                "" if default in (None, [], "") else str(default),
                field.description or "",
            )
        )
    return rows
