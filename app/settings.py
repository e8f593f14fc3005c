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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "ARENA_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    models: Path | None = Field(None, description="Models TOML file; the embedded default (bundled Gemma) when unset.")
    db: Path = Field(Path("arena.db"), description="SQLite database file.")
    api_key: list[str] = Field(
        default_factory=list,
        description="API keys that protect /v1 (repeat the flag, or comma-separate in env).",
    )
    admin_token: str | None = Field(None, description="Token for /admin and /api/v1/admin; admin is off when unset.")
    max_body_bytes: int = Field(1_000_000, gt=0, description="Largest request body accepted.")
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
    trusted_proxies: list[str] = Field(default_factory=list, description="Proxy IPs whose X-Forwarded-For is believed.")
    generation_timeout: float = Field(300.0, gt=0, description="Seconds one battle answer may take before it fails.")
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
        raise SettingsError(str(exc)) from exc


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
