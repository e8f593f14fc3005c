"""``arena models [add|remove|pause|resume]``.

With a server running on --host/--port, changes go through its admin API (--admin-token) and
take effect at once. With none running they are written to the database and apply at the next
start. Listing shows the live state when a server answers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import time
from typing import Any

import httpx
from pydantic import ValidationError

from app.cli.common import CommandError, print_table, settings_from
from app.registry.factory import WeightsError, check_weights, resolve_kind
from app.registry.spec import ModelSpec, load_models
from app.settings import Settings
from app.store import migrations

FLAGS = ["models", "db", "host", "port", "admin_token", "model_dir"]
ACTIONS = ("add", "remove", "pause", "resume")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=ACTIONS, help="What to do (default: list).")
    parser.add_argument("model_id", nargs="?", help="The model's id.")
    parser.add_argument("--weights", help="add: a .gguf file, a checkpoint folder, or bundled:NAME")
    parser.add_argument("--engine", default="auto", help="add: llama.cpp, transformers, vllm, remote or auto")
    parser.add_argument("--name", default="", help="add: display name")
    parser.add_argument(
        "--chat-format", default="auto", help="add: turn format for GGUF files (auto: the file's own template)"
    )
    parser.add_argument("--lora", default="", help="add: a LoRA adapter GGUF over --weights (llama.cpp)")
    parser.add_argument("--context-length", type=int, default=2048, help="add: context window")
    parser.add_argument("--weight", type=float, default=1.0, help="add: battle sampling weight")
    parser.add_argument(
        "--no-battle", action="store_true", help="add: keep it out of anonymous battles (battle = false)"
    )
    parser.add_argument("--base-url", default="", help="add (remote): the endpoint's /v1 URL")
    parser.add_argument("--remote-model", default="", help="add (remote): the model's name there")
    parser.add_argument("--api-key-env", default="", help="add (remote): env var holding the key")
    parser.add_argument("--vision", action="store_true", help="add: the model takes images")
    parser.add_argument("--mmproj", default="", help="add (llama.cpp vision): the multimodal projector GGUF")


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, FLAGS)
    if args.action is None:
        return _list(settings)
    if not args.model_id:
        raise CommandError(f"models {args.action} needs a model id")
    body: dict[str, Any] | None = None
    if args.action == "add":
        body = _spec_from(args).model_dump(exclude_defaults=True)
    server = f"http://{settings.host}:{settings.port}"
    if _running(server):
        return _online(server, settings, args.action, args.model_id, body)
    return _offline(settings, args.action, args.model_id, body)


def _spec_from(args: argparse.Namespace) -> ModelSpec:
    try:
        return ModelSpec(
            id=args.model_id,
            name=args.name,
            engine=args.engine,
            weights=args.weights or "",
            lora=args.lora,
            chat_format=args.chat_format,
            context_length=args.context_length,
            weight=args.weight,
            battle=not args.no_battle,
            base_url=args.base_url,
            remote_model=args.remote_model,
            api_key_env=args.api_key_env,
            vision=args.vision or bool(args.mmproj),
            mmproj=args.mmproj,
        )
    except ValidationError as exc:
        raise CommandError(f"invalid model: {exc.errors(include_url=False)[0]['msg']}") from None


def _running(server: str) -> bool:
    try:
        return httpx.get(server + "/health", timeout=1.5).status_code == 200
    except httpx.HTTPError:
        return False


def _online(server: str, settings: Settings, action: str, model_id: str, body: dict[str, Any] | None) -> int:
    if not settings.admin_token:
        raise CommandError("a server is running: pass --admin-token (or ARENA_ADMIN_TOKEN) to change it")
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    base = server + "/api/v1/admin/models"
    if action == "add":
        r = httpx.post(base, json=body, headers=headers, timeout=600)
    elif action == "remove":
        r = httpx.delete(f"{base}/{model_id}", headers=headers, timeout=60)
    else:
        r = httpx.post(f"{base}/{model_id}/{action}", headers=headers, timeout=60)
    if r.status_code >= 400:
        raise CommandError(r.json().get("error", {}).get("message", r.text))
    print(f"{action}: {model_id} (applied to the running server)")
    return 0


def _offline(settings: Settings, action: str, model_id: str, body: dict[str, Any] | None) -> int:
    from pathlib import Path

    migrations.apply(str(settings.db))
    known = {s.id: s for s in merged_specs(settings)}
    if action == "add":
        spec = ModelSpec.model_validate(body)
        if model_id in known:
            raise CommandError(f"a model with id {model_id!r} already exists")
        try:
            check_weights(spec, [Path(d) for d in settings.model_dir])
        except WeightsError as exc:
            raise CommandError(str(exc)) from None
        _write(settings, model_id, spec.model_dump_json(), "active", False)
    else:
        if model_id not in known:
            raise CommandError(f"no model {model_id!r}")
        state = {"pause": "paused", "resume": "active", "remove": "active"}[action]
        _write(settings, model_id, known[model_id].model_dump_json(), state, action == "remove")
    print(f"{action}: {model_id} (no server running: saved, applies at the next start)")
    return 0


def _write(settings: Settings, model_id: str, spec: str, state: str, removed: bool) -> None:
    with sqlite3.connect(settings.db) as conn:
        conn.execute(
            "INSERT INTO registry (id, spec, state, removed, updated) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, state = excluded.state,"
            " removed = excluded.removed, updated = excluded.updated",
            (model_id, spec, state, int(removed), time.time()),
        )


def _stored(settings: Settings) -> list[sqlite3.Row]:
    if not settings.db.exists():
        return []
    with sqlite3.connect(settings.db) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute("SELECT * FROM registry ORDER BY updated"))
        except sqlite3.OperationalError:
            return []


def merged_specs(settings: Settings) -> list[ModelSpec]:
    specs = {s.id: s for s in load_models(settings.models)}
    for row in _stored(settings):
        if row["removed"]:
            specs.pop(row["id"], None)
        elif row["spec"]:
            specs[row["id"]] = ModelSpec.model_validate(json.loads(row["spec"]))
    return list(specs.values())


def _list(settings: Settings) -> int:
    server = f"http://{settings.host}:{settings.port}"
    live: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):  # no server: list the files' view
        live = httpx.get(server + "/ready", timeout=2.0).json()["models"]
    states = {row["id"]: row["state"] for row in _stored(settings)}
    rows = [("ID", "NAME", "ENGINE", "VISION", "STATE", "BATTLES", "LOADED")]
    for spec in merged_specs(settings):
        info = live.get(spec.id)
        vision = "yes" if spec.vision else "no"
        state = info["state"] if info else states.get(spec.id, "active")
        battles = "no (battle = false)" if not spec.battle else ("yes" if state == "active" else f"no ({state})")
        if info:
            loaded = "yes" if info["loaded"] else "no"
            rows.append((spec.id, spec.display_name, info["engine"], vision, state, battles, loaded))
        else:
            rows.append(
                (spec.id, spec.display_name, resolve_kind(spec), vision, state, battles, "no (server not running)")
            )
    for model_id, info in live.items():  # added at runtime and not yet in this database's view
        if model_id not in {r[0] for r in rows}:
            vision = "yes" if info.get("vision") else "no"
            loaded = "yes" if info["loaded"] else "no"
            rows.append((model_id, model_id, info["engine"], vision, info["state"], "?", loaded))
    print_table(rows)
    return 0
