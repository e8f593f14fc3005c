"""The image pipeline's cost: upload-to-first-token overhead against the engine's own time, and
images cleaned per second. Ours against anchors measured in the same run.

1. Throughput (in-process): ``ImageStore.sanitize`` + ``save`` (magic bytes, bomb check, verify,
   full decode, EXIF orientation, resize to 1024, re-encode, SHA-256, atomic write) on a
   3000x2000 JPEG photo and a 3000x2000 PNG, against two anchors on the same files: Pillow's bare
   decode (``open`` + ``load``, the floor) and a naive resize (``open``, ``thumbnail``, ``save``).
2. Overhead (a real `arena serve` over HTTP, the path users run): time to the first streamed token
   of a /v1 chat request carrying the JPEG as a data: URL, against the engine's own time to first
   token for the same request with the already-cleaned image handed to the engine in-process (no
   HTTP, no decoding, no resizing), and against the same HTTP request without an image.
   Two models: a tiny random LLaVA (tests/helpers/tiny_vlm.py) on the transformers engine, and the
   bundled Gemma 3 270M with a tiny random Gemma 3 projector (tests/helpers/tiny_mmproj.py) on
   llama.cpp. Their vision towers are tiny, so the engine's time here is a floor; a real vision
   model's is larger by orders of magnitude.

Rounds alternate between the systems so machine noise hits all alike. Follows the QUIET protocol
(/tmp/arena-logs/QUIET) when that folder exists.

    python bench/vision.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

# torch's OpenMP threads spin after each op and starve llama.cpp's threads in the same process
# (measured: the llama.cpp engine's first token 5x slower after the transformers model ran).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # for this process and the server it starts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ROOT, free_port, wait_ready  # noqa: E402

sys.path.insert(0, str(ROOT))
from PIL import Image as PILImage  # noqa: E402

from app.engines.base import ChatMessage, Engine, GenerationRequest  # noqa: E402
from app.engines.llamacpp import CpuBudget  # noqa: E402
from app.media.images import ImageLimits, ImageStore  # noqa: E402
from app.registry.factory import EngineFactory  # noqa: E402
from app.registry.spec import load_models  # noqa: E402
from tests.helpers.tiny_vlm import build_tiny_vlm  # noqa: E402

QUIET = Path("/tmp/arena-logs/QUIET")
QUESTION = "What is in this picture?"


@contextmanager
def quiet() -> Iterator[None]:
    """Wait for anyone else's QUIET, then hold it for the run."""
    if not QUIET.parent.is_dir():
        yield
        return
    while QUIET.exists() and QUIET.read_text().strip() != "H1":
        print(f"waiting: {QUIET} is held by {QUIET.read_text().strip()}", file=sys.stderr)
        time.sleep(15)
    QUIET.write_text("H1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still lets go of QUIET
    try:
        yield
    finally:
        QUIET.unlink(missing_ok=True)


def photo(fmt: str) -> bytes:
    """A 3000x2000 'photo': smooth gradients plus noise, so encoders work as on a real one."""
    base = PILImage.linear_gradient("L").resize((3000, 2000))
    noise = PILImage.effect_noise((3000, 2000), 24)
    picture = PILImage.merge("RGB", (base, noise, base.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)))
    out = io.BytesIO()
    picture.save(out, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return out.getvalue()


def per_second(fn: Callable[[], object], seconds: float = 4.0) -> float:
    fn()  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        done += 1
    return done / (time.perf_counter() - start)


def throughput(store: ImageStore, raw: bytes, mime: str) -> dict[str, float]:
    fmt = "JPEG" if mime == "image/jpeg" else "PNG"

    def ours() -> None:
        image, _w, _h = store.sanitize(raw, mime)
        store.save(image)

    def decode() -> None:
        with PILImage.open(io.BytesIO(raw)) as picture:
            picture.load()

    def naive() -> None:
        with PILImage.open(io.BytesIO(raw)) as picture:
            picture.thumbnail((1024, 1024))
            picture.save(io.BytesIO(), fmt)

    return {"ours": per_second(ours), "decode": per_second(decode), "naive": per_second(naive)}


def first_token_http(base: str, body: dict[str, object]) -> float:
    start = time.perf_counter()
    with httpx.stream("POST", base + "/v1/chat/completions", json={**body, "stream": True}, timeout=120) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                return time.perf_counter() - start
    raise RuntimeError("no token came")


def first_token_engine(loop: asyncio.AbstractEventLoop, engine: Engine, request: GenerationRequest) -> float:
    """In-process, on one long-lived loop (an engine's worker threads call back into it)."""

    async def run() -> float:
        start = time.perf_counter()
        stream = engine.generate(request)
        async for delta in stream:
            if delta.text or delta.finish_reason:
                elapsed = time.perf_counter() - start
                await stream.aclose()  # type: ignore[attr-defined]
                return elapsed
        raise RuntimeError("no token came")

    return loop.run_until_complete(run())


def models_file(work: Path) -> Path:
    """The tiny LLaVA on transformers; the bundled Gemma with a tiny Gemma 3 projector on llama.cpp
    when llama.cpp's converter is there to make one (``make trainer-tools``)."""
    llava = build_tiny_vlm(work / "tiny-llava")
    text = (
        f'[[models]]\nid = "tiny-llava"\nengine = "transformers"\nvision = true\nweights = "{llava}"\n'
        "context_length = 256\n"
    )
    try:
        from tests.helpers.tiny_mmproj import build_tiny_mmproj

        mmproj = build_tiny_mmproj(work / "mmproj")
        text += (
            f'\n[[models]]\nid = "gemma-mmproj"\nweights = "bundled:gemma-3-270m"\nchat_format = "gemma"\nvision = true\n'
            f'mmproj = "{mmproj}"\ncontext_length = 1024\n'
        )
    except Exception as exc:  # noqa: BLE001 - the llama.cpp row is optional
        print(f"(no llama.cpp row: {exc})", file=sys.stderr)
    path = work / "models.toml"
    path.write_text(text)
    return path


def overhead(work: Path, jpeg: bytes, rounds: int) -> dict[str, dict[str, list[float]]]:
    models = models_file(work)
    port = free_port()
    flags = ["--generation-rate", "100000/60", "--model-rate", "100000/60", "--model-dir", str(work)]
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(port), "--db", str(work / "a.db"), "--models"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    proc = subprocess.Popen([*cmd, str(models), *flags], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    factory = EngineFactory(CpuBudget(), parallel=1, max_queue=4)
    loop = asyncio.new_event_loop()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/ready", proc)
        clean, _w, _h = ImageStore(work / "images", ImageLimits()).sanitize(jpeg, "image/jpeg")
        url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        parts = [{"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": url}}]
        results: dict[str, dict[str, list[float]]] = {}
        for spec in load_models(models):
            engine = loop.run_until_complete(factory.build(spec, spec.resolved_weights(), spec.context_length))
            with_image = {
                "model": spec.id,
                "max_tokens": 2,
                "temperature": 0,
                "messages": [{"role": "user", "content": parts}],
            }
            text_only = {**with_image, "messages": [{"role": "user", "content": QUESTION}]}
            direct = GenerationRequest(
                "b", messages=[ChatMessage("user", QUESTION, (clean,))], max_tokens=2, temperature=0
            )
            times: dict[str, list[float]] = {"http+image": [], "engine": [], "http text": []}
            for _ in range(rounds + 1):  # the first round warms up and is dropped
                times["http+image"].append(first_token_http(base, with_image))
                times["engine"].append(first_token_engine(loop, engine, direct))
                times["http text"].append(first_token_http(base, text_only))
            results[spec.id] = {k: v[1:] for k, v in times.items()}
            loop.run_until_complete(engine.close())
        return results
    finally:
        loop.close()
        factory.close()
        proc.terminate()
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    jpeg, png = photo("JPEG"), photo("PNG")
    with quiet(), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = ImageStore(work / "store", ImageLimits())
        print(f"3000x2000 photo: JPEG {len(jpeg) / 1e6:.2f} MB, PNG {len(png) / 1e6:.2f} MB; long edge 1024")
        print(f"{'images/s':<12}{'ours':>10}{'decode':>10}{'naive':>10}{'ours/decode':>13}{'ours/naive':>12}")
        for name, raw, mime in (("JPEG", jpeg, "image/jpeg"), ("PNG", png, "image/png")):
            r = throughput(store, raw, mime)
            print(
                f"{name:<12}{r['ours']:>10.2f}{r['decode']:>10.2f}{r['naive']:>10.2f}"
                f"{r['ours'] / r['decode']:>13.2f}{r['ours'] / r['naive']:>12.2f}"
            )
        results = overhead(work, jpeg, args.rounds)
    for model, times in results.items():
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"\ntime to first token, {model}: median of {args.rounds} rounds (ms)")
        for name, label in (
            ("http+image", "ours: POST /v1 with the JPEG (upload, decode, resize, engine)"),
            ("engine", "anchor: the engine alone, cleaned image in-process"),
            ("http text", "anchor: POST /v1, same question, no image"),
        ):
            print(f"  {label:<62}{med[name]:>9.1f}")
        pipeline = med["http+image"] - med["engine"]
        print(f"  upload-to-first-token overhead (ours - engine){'':<16}{pipeline:>9.1f}")
        ratio = med["http+image"] / med["engine"]
        print(f"  ratio ours/engine {ratio:.2f}, ours/http text {med['http+image'] / med['http text']:.2f}")


if __name__ == "__main__":
    main()
