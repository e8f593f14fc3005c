"""A real `arena serve` on a free loopback port, for integration tests and benchmarks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Collection, Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def scripted_models_toml(replies: dict[str, list[str]], vision: Collection[str] = ()) -> str:
    """A models file of scripted models; those named in ``vision`` take images (``vision = true``)."""
    blocks = []
    for model_id, script in replies.items():
        quoted = ", ".join(json.dumps(s) for s in script)  # JSON strings are TOML basic strings
        sees = "true" if model_id in vision else "false"
        blocks.append(
            textwrap.dedent(
                f"""
                [[models]]
                id = "{model_id}"
                name = "Scripted {model_id}"
                engine = "scripted"
                context_length = 64
                vision = {sees}
                script = [{quoted}]
                metadata = {{ organization = "Test Org", license = "MIT" }}
                """
            )
        )
    return "\n".join(blocks)


def presets_models_toml() -> str:
    """The default file's two base presets of the bundled Gemma, both in anonymous battles: the
    arena most integration tests were written for (the default file keeps them out of battles)."""
    from importlib import resources

    text = resources.files("app").joinpath("default_models.toml").read_text()
    blocks = [b for b in text.split("[[models]]")[1:] if 'weights = "bundled:gemma-3-270m"' in b and "lora" not in b]
    assert len(blocks) == 2 and all("battle = false" in b for b in blocks), "the default file changed"
    return "".join("[[models]]" + b.replace("battle = false", "battle = true") for b in blocks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ADMIN_TOKEN = "test-admin-token"


class ArenaServer:
    """`arena serve` as a subprocess on a free loopback port."""

    def __init__(
        self,
        tmp: Path,
        *args: str,
        launcher: tuple[str, ...] = ("-m", "app"),
        extra_env: Mapping[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"server-{self.port}.log"
        cmd = [sys.executable, *launcher, "serve", "--port", str(self.port), "--db", str(tmp / "arena.db"), *args]
        extra, env = env or {}, {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
        # Admin on (per-model /metrics need it) and generation and stream limits out of the way, unless the
        # test's own flags say otherwise (flags win over the environment).
        env |= {
            "ARENA_DEMO_MODEL": "",
            "ARENA_ADMIN_TOKEN": ADMIN_TOKEN,
            "ARENA_GENERATION_RATE": "100000/1",
            "ARENA_MODEL_RATE": "100000/1",
            "ARENA_MAX_STREAMS_PER_CLIENT": "100000",
            "ARENA_MAX_CONNECTIONS_PER_CLIENT": "100000",
            **extra,  # the test's own (ARENA_DEMO_MODEL to serve the demo chat model)
        }
        env |= dict(extra_env or {})  # e.g. an empty ARENA_ADMIN_TOKEN
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.base + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not become ready: {self.log.read_text()}")

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.base + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(name + ("{" + want + "}" if want else " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
