"""Battles about an image, in-process over scripted engines: only vision models are drawn, the
image reaches them (and stays in later turns' history), a conversation takes a limited number of
images, bad input stores nothing, the image is served only to its visitor and to admins, the
vote lands in the ``vision`` category, and the export names (and writes) the images."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from PIL import Image as PILImage

from app.cli import main as arena_cli
from app.server import create_app
from app.settings import Settings
from tests.helpers.arena import Client, csrf, db_rows, finish, parse_html, serve
from tests.helpers.server import free_port, scripted_models_toml

TEXT = ["text-1", "text-2", "text-3"]
SEEING = ["see-1", "see-2", "see-3"]
ADMIN = "vision-admin-token"


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress (random pixels): large on disk for its size."""
    out = io.BytesIO()
    PILImage.frombytes("RGB", (width, height), random.Random(7).randbytes(width * height * 3)).save(out, "PNG")
    return out.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><rect width="9" height="9"/></svg>'
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"


@pytest.fixture
def vision_app(tmp_path: Path) -> Callable[..., Litestar]:
    """An app whose models file has text-only and vision scripted models."""

    def build(text: list[str] = TEXT, seeing: list[str] = SEEING, **overrides: Any) -> Litestar:
        replies = {m: [f"{m} answers."] for m in [*text, *seeing]}
        models = tmp_path / "models.toml"
        models.write_text(scripted_models_toml(replies, vision=seeing))
        settings: dict[str, Any] = {
            "generation_rate": "100000/1",
            "model_rate": "100000/1",
            "battle_rate": "100000/1",
            "vote_rate": "100000/1",
            "admin_token": ADMIN,
            **overrides,
        }
        return create_app(Settings(models=models, db=tmp_path / "arena.db", **settings))

    return build


@asynccontextmanager
async def other_visitor(app: Litestar, ip: str = "10.9.8.7") -> AsyncIterator[httpx.AsyncClient]:
    """A second client of the same running app, from another address (another visitor)."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40001))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
        yield c


async def page_battle(client: Client, files: list[tuple[str, bytes, str]], **form: str) -> httpx.Response:
    """POST the start form as htmx sends it with a file picked: multipart/form-data."""
    data = {"prompt": "What is in this picture?", "mode": "anony", **form}
    parts = [("image", f) for f in files]
    return await client.post("/battle", data=data, files=parts, headers=await csrf(client))


def battle_id_of(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return parse_html(r.text).one(id_="battle").attrs["data-battle"]


def counts(app: Litestar) -> dict[str, int]:
    tables = ("battles", "messages", "images", "battle_images")
    return {t: db_rows(app, f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}  # noqa: S608


def stored_files(app: Litestar) -> list[Path]:
    folder = app.state.images.folder
    return sorted(p for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []


def engine(app: Litestar, model_id: str) -> Any:
    return app.state.models.get(model_id).engine


# -- drawing --------------------------------------------------------------------------------


async def test_a_battle_about_an_image_draws_only_vision_models(vision_app) -> None:
    app = vision_app()
    arena = app.state.arena
    image = png()
    async with serve(app):
        drawn: set[str] = set()
        for n in range(40):
            battle = await arena.start(f"Look {n}", mode="anony", voter_hash="v" * 32, images=[(image, "image/png")])
            await arena.wait(battle)
            assert set(battle.models.values()) <= set(SEEING), battle.models
            drawn |= set(battle.models.values())
        assert drawn == set(SEEING)  # every vision model is drawn; no text-only one ever
        without: set[str] = set()
        for n in range(40):
            battle = await arena.start(f"Plain {n}", mode="anony", voter_hash="v" * 32)
            await arena.wait(battle)
            without |= set(battle.models.values())
        assert without & set(TEXT)  # without an image, any model may be drawn
        for model_id in TEXT:  # no text-only engine was ever asked about an image
            assert all(not m.images for r in engine(app, model_id).requests for m in r.messages)
        asked = engine(app, SEEING[0]).requests
        sent = [m for r in asked for m in r.messages if m.images]
        assert sent and all(m.images[0].sha256 == sent[0].images[0].sha256 for m in sent)


async def test_too_few_vision_models_is_a_clear_503(vision_app) -> None:
    app = vision_app(seeing=["see-1"])
    async with serve(app) as client:
        r = await page_battle(client, [("cat.png", png(), "image/png")])
        assert r.status_code == 503
        assert "at least two active vision models" in parse_html(r.text).text()
        assert counts(app)["battles"] == 0
        r = await client.post("/api/v1/battles", json={"prompt": "What is it?", "images": [data_url(png())]})
        assert r.status_code == 503 and "vision models" in r.json()["error"]["message"]
        r = await client.post("/api/v1/battles", json={"prompt": "What is it?", "images": [data_url(SVG)]})
        assert r.status_code == 400  # a bad file is the client's mistake, whatever models there are


async def test_the_api_decodes_data_urls_off_the_event_loop(vision_app, monkeypatch) -> None:
    from app.media.images import decode_data_url
    from app.routes import arena_api

    threads: list[int] = []

    def recording(url: str, **kwargs: Any) -> tuple[str, bytes]:
        threads.append(threading.get_ident())
        return decode_data_url(url, **kwargs)

    monkeypatch.setattr(arena_api, "decode_data_url", recording)
    async with serve(vision_app()) as client:
        r = await client.post("/api/v1/battles", json={"prompt": "What?", "images": [data_url(png())], "wait": True})
        assert r.status_code == 201, r.text
    assert threads and threading.get_ident() not in threads


async def test_the_uploaded_files_are_closed(vision_app, monkeypatch) -> None:
    """Litestar closes a request's form files itself once the response is sent (routes/http.py),
    so the page handler does not; this keeps that true across upgrades."""
    from litestar.datastructures import UploadFile

    closed: list[str | None] = []
    close = UploadFile.close

    async def recording(self: UploadFile) -> None:
        closed.append(self.filename)
        await close(self)

    monkeypatch.setattr(UploadFile, "close", recording)
    app = vision_app(images_per_conversation=2)
    async with serve(app) as client:
        r = await page_battle(client, [("a.png", png(), "image/png"), ("b.png", png(color=(1, 2, 3)), "image/png")])
        battle_id_of(r)
    assert sorted(c for c in closed if c) == ["a.png", "b.png"]


async def test_a_picked_text_model_with_an_image_is_400(vision_app) -> None:
    app = vision_app()
    async with serve(app) as client:
        r = await client.post(
            "/api/v1/battles",
            json={"prompt": "What is it?", "mode": "named", "models": ["see-1", "text-1"], "images": [data_url(png())]},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_vision"
        assert r.json()["error"]["param"] == "models"
        r = await page_battle(client, [("cat.png", png(), "image/png")], mode="direct", models="text-2")
        assert r.status_code == 400 and "does not take images" in parse_html(r.text).text()
        assert counts(app)["battles"] == 0 and stored_files(app) == []
        r = await page_battle(client, [("cat.png", png(), "image/png")], mode="direct", models="see-2")
        battle_id = battle_id_of(r)
        await finish(client, battle_id)
        assert db_rows(app, "SELECT model_a FROM battles WHERE id = ?", (battle_id,))[0][0] == "see-2"


# -- turns and the count limit --------------------------------------------------------------


async def test_images_count_across_turns_and_stay_in_the_history(vision_app) -> None:
    app = vision_app(text=[], images_per_conversation=2)
    first, second, third = png(color=(1, 2, 3)), png(color=(4, 5, 6)), png(color=(7, 8, 9))
    async with serve(app) as client:
        r = await client.post("/api/v1/battles", json={"prompt": "One?", "images": [data_url(first)], "wait": True})
        assert r.status_code == 201, r.text
        battle_id = r.json()["id"]
        turn1 = r.json()["turns"][0]["images"]
        assert len(turn1) == 1 and turn1[0]["url"] == f"/battle/{battle_id}/images/{turn1[0]['sha256']}"
        r = await client.post(
            f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Two?", "images": [data_url(second)], "wait": True}
        )
        assert r.status_code == 201, r.text
        before = counts(app)
        app.state.arena.live.clear()  # the battle read back from the store counts its images too
        r = await client.post(
            f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Three?", "images": [data_url(third)]}
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_images"
        assert "at most 2 images" in r.json()["error"]["message"]
        assert counts(app) == before and len(stored_files(app)) == 2  # the refused turn left nothing
        state = (await client.get(f"/api/v1/battles/{battle_id}")).json()
        assert len(state["turns"]) == 2
        model_a = db_rows(app, "SELECT model_a FROM battles WHERE id = ?", (battle_id,))[0][0]
        last = engine(app, model_a).requests[-1].messages
        assert [m.role for m in last] == ["user", "assistant", "user"]
        hashes = [[i.sha256 for i in m.images] for m in last]
        rows = db_rows(app, "SELECT turn, sha256 FROM battle_images WHERE battle_id = ? ORDER BY turn", (battle_id,))
        assert hashes == [[rows[0]["sha256"]], [], [rows[1]["sha256"]]]
        assert [r["turn"] for r in rows] == [1, 2]


async def test_one_image_per_conversation_by_default(vision_app) -> None:
    app = vision_app(text=[])
    async with serve(app) as client:
        r = await page_battle(client, [("a.png", png(), "image/png"), ("b.png", png(color=(9, 9, 9)), "image/png")])
        assert r.status_code == 400 and "at most 1 image" in parse_html(r.text).text()
        assert counts(app)["battles"] == 0
        battle_id = battle_id_of(await page_battle(client, [("a.png", png(), "image/png")]))
        await finish(client, battle_id)
        page = parse_html((await client.get(f"/battle/{battle_id}")).text)
        assert page.all("input", type="file") == []  # the follow-up form offers no second image
        r = await client.post(
            f"/battle/{battle_id}/turn",
            data={"prompt": "And now?"},
            files=[("image", ("c.png", png(color=(5, 5, 5)), "image/png"))],
            headers=await csrf(client),
        )
        assert r.status_code == 400 and "at most 1 image" in parse_html(r.text).text()
        assert db_rows(app, "SELECT turns FROM battles WHERE id = ?", (battle_id,))[0][0] == 1


async def test_an_anonymous_battle_takes_an_image_only_with_its_first_prompt(vision_app) -> None:
    """Whatever pair a text battle drew, a later image is refused alike: the refusal (and the
    follow-up form) tells nothing about whether the drawn models see."""
    app = vision_app(text=["text-1"], seeing=["see-1", "see-2"], images_per_conversation=2)
    async with serve(app) as client:
        pairs, answers = set(), set()
        for _ in range(12):
            r = await client.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
            battle_id = r.json()["id"]
            pairs.add(frozenset(db_rows(app, "SELECT model_a, model_b FROM battles WHERE id = ?", (battle_id,))[0]))
            page = parse_html((await client.get(f"/battle/{battle_id}")).text)
            assert page.all("input", type="file") == []
            r = await client.post(
                f"/api/v1/battles/{battle_id}/messages", json={"prompt": "This?", "images": [data_url(png())]}
            )
            assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_vision"
            answers.add(r.json()["error"]["message"])
        assert frozenset({"see-1", "see-2"}) in pairs and len(pairs) > 1  # both kinds of pair were drawn
        assert len(answers) == 1 and "first prompt" in answers.pop()
        assert counts(app)["images"] == 0 and stored_files(app) == []
        battle_id = battle_id_of(await page_battle(client, [("a.png", png(), "image/png")]))
        await finish(client, battle_id)  # began with an image: a second one may follow
        page = parse_html((await client.get(f"/battle/{battle_id}")).text)
        assert page.one("form", cls="prompt-form").one("input", type="file").attrs["name"] == "image"
    chat = vision_app(seeing=["see-1"])
    async with serve(chat) as client:
        named = {"prompt": "Hi", "mode": "named", "models": ["text-1", "see-1"], "wait": True}
        r = await client.post("/api/v1/battles", json=named)
        r = await client.post(
            f"/api/v1/battles/{r.json()['id']}/messages", json={"prompt": "This?", "images": [data_url(png())]}
        )
        assert r.status_code == 400 and "models of this battle do not take images" in r.json()["error"]["message"]


# -- bad input stores nothing ---------------------------------------------------------------


def truncated_png() -> bytes:
    whole = noise_png(64, 64)
    return whole[: len(whole) // 2]


def jpeg() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (32, 32), (0, 90, 0)).save(out, "JPEG")
    return out.getvalue()


BAD = {
    "not an image": (b"just some text, not a picture", "text/plain", "invalid_image"),
    "svg renamed .png": (SVG, "image/png", "invalid_image"),
    "html renamed .png": (HTML, "image/png", "invalid_image"),
    "truncated png": (truncated_png(), "image/png", "invalid_image"),
    "declared png, is jpeg": (jpeg(), "image/png", "image_type_mismatch"),
    "empty file": (b"", "image/png", "invalid_image"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_input_is_4xx_and_stores_nothing(vision_app, case: str) -> None:
    raw, mime, code = BAD[case]
    app = vision_app()
    async with serve(app) as client:
        r = await page_battle(client, [("picture.png", raw, mime)])
        assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
        assert parse_html(r.text).one(cls="flash").text()  # a message for the page
        r = await client.post("/api/v1/battles", json={"prompt": "What is it?", "images": [data_url(raw, mime)]})
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
        assert r.json()["error"]["param"] == "images[0]"
        assert counts(app) == {"battles": 0, "messages": 0, "images": 0, "battle_images": 0}
        assert stored_files(app) == []


async def test_an_image_field_that_is_not_a_file_is_refused(vision_app) -> None:
    app = vision_app()
    async with serve(app) as client:
        data = {"prompt": "What?", "mode": "anony", "image": data_url(png())}
        r = await client.post("/battle", data=data, headers=await csrf(client))
        assert r.status_code == 400 and "as a file" in parse_html(r.text).text()
        assert counts(app)["battles"] == 0


async def test_an_oversized_image_is_refused_and_stores_nothing(vision_app) -> None:
    big = noise_png(200, 200)  # about 120 KB of noise
    app = vision_app(image_max_mb=0.05)
    async with serve(app) as client:
        r = await page_battle(client, [("big.png", big, "image/png")])
        assert r.status_code == 400 and "larger than" in parse_html(r.text).text()
        r = await client.post("/api/v1/battles", json={"prompt": "What?", "images": [data_url(big)]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "image_too_large"
        r = await client.post("/api/v1/battles", json={"prompt": "What?", "images": ["https://example.com/cat.png"]})
        assert r.status_code == 400  # a remote URL is never fetched here
        assert counts(app) == {"battles": 0, "messages": 0, "images": 0, "battle_images": 0}
        assert stored_files(app) == []


# -- serving the image ----------------------------------------------------------------------


async def test_the_image_is_served_only_to_its_visitor_and_admins(vision_app) -> None:
    app = vision_app()
    async with serve(app) as client:
        battle_id = battle_id_of(await page_battle(client, [("cat.png", png(), "image/png")]))
        await finish(client, battle_id)
        page = parse_html((await client.get(f"/battle/{battle_id}")).text)
        src = page.one("div", cls="prompt-images").one("img").attrs["src"]
        sha = db_rows(app, "SELECT sha256 FROM battle_images WHERE battle_id = ?", (battle_id,))[0][0]
        assert src == f"/battle/{battle_id}/images/{sha}"
        r = await client.get(src)
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
        assert r.headers["content-type"] == "image/png"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"] == "default-src 'none'"
        assert r.headers["cache-control"].startswith("private")
        other_battle = battle_id_of(await page_battle(client, [("dog.png", png(color=(0, 0, 200)), "image/png")]))
        await finish(client, other_battle)
        missing = await client.get(f"/battle/{other_battle}/images/{sha}")  # an image of another battle
        async with other_visitor(app) as stranger:
            denied = await stranger.get(src)
            nothing = await stranger.get(f"/battle/{battle_id}/images/{'0' * 64}")
            admin = await stranger.get(src, headers={"Authorization": f"Bearer {ADMIN}"})
            wrong = await stranger.get(src, headers={"Authorization": "Bearer nope"})
        assert missing.status_code == 404
        assert denied.status_code == 404 and nothing.status_code == 404
        assert denied.text == nothing.text  # the same answer: the image's existence is not told
        assert admin.status_code == 200 and admin.content == r.content
        assert wrong.status_code == 404


# -- category, pages, export ----------------------------------------------------------------


async def test_a_vote_on_an_image_battle_is_in_the_vision_category(vision_app) -> None:
    app = vision_app()
    async with serve(app) as client:
        battle_id = battle_id_of(await page_battle(client, [("cat.png", png(), "image/png")]))
        await finish(client, battle_id)
        r = await client.post(f"/battle/{battle_id}/vote", data={"winner": "model_a"}, headers=await csrf(client))
        assert r.status_code == 200
        plain = (await client.post("/api/v1/battles", json={"prompt": "Hello there", "wait": True})).json()["id"]
        await client.post(f"/api/v1/battles/{plain}/vote", json={"winner": "model_b"})
        categories = {row[0]: row[1].split() for row in db_rows(app, "SELECT battle_id, categories FROM votes")}
        assert "vision" in categories[battle_id] and "vision" not in categories[plain]
        pairs = db_rows(app, "SELECT model_a, model_b FROM pair_counts WHERE category = 'vision'")
        assert len(pairs) == 1 and set(pairs[0]) <= set(SEEING)
        board = parse_html((await client.get("/leaderboard?category=vision")).text)
        tabs = [a for a in board.all("a") if "category=vision" in a.attrs.get("href", "")]
        assert [a.text().strip() for a in tabs] == ["vision"] and tabs[0].attrs.get("aria-selected") == "true"


async def test_the_start_forms_offer_an_image_picker(vision_app) -> None:
    app = vision_app()
    async with serve(app) as client:
        for path in ("/", "/compare", "/chat"):
            tree = parse_html((await client.get(path)).text)
            form = tree.one("form", cls="prompt-form")
            assert form.attrs["hx-encoding"] == "multipart/form-data"
            picker = form.one("div", cls="image-picker")
            file_input = picker.one("input", type="file")
            assert file_input.attrs["name"] == "image"
            assert file_input.attrs["accept"] == "image/png,image/jpeg,image/webp"
            assert picker.one("button", cls="image-remove")
            assert "/static/images.js" in [s.attrs.get("src") for s in tree.all("script")]
        options = parse_html((await client.get("/chat")).text).all("option")
        assert {o.attrs["value"] for o in options if "sees images" in o.text()} == set(SEEING)
        assert (await client.get("/static/images.js")).status_code == 200
    off = vision_app(images_per_conversation=0)
    async with serve(off) as client:
        assert parse_html((await client.get("/")).text).all("input", type="file") == []
        r = await client.post("/api/v1/battles", json={"prompt": "What?", "images": [data_url(png())]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "images_off"


async def test_export_names_the_images_and_writes_their_files(vision_app, tmp_path: Path, capsys) -> None:
    app = vision_app()
    async with serve(app) as client:
        ids = []
        for color in ((10, 20, 30), (40, 50, 60)):
            battle_id = battle_id_of(await page_battle(client, [("x.png", png(color=color), "image/png")]))
            await finish(client, battle_id)
            await client.post(f"/battle/{battle_id}/vote", data={"winner": "tie"}, headers=await csrf(client))
            ids.append(battle_id)
        plain = (await client.post("/api/v1/battles", json={"prompt": "No picture", "wait": True})).json()["id"]
        await client.post(f"/api/v1/battles/{plain}/vote", json={"winner": "model_a"})
        stored = {r[0]: r[1] for r in db_rows(app, "SELECT battle_id, sha256 FROM battle_images")}
    settings = app.state.settings
    out, folder = tmp_path / "export.jsonl", tmp_path / "exported-images"
    code = arena_cli(
        [
            "battles",
            "export",
            str(out),
            "--db",
            str(settings.db),
            "--models",
            str(settings.models),
            "--images",
            str(folder),
        ]
    )
    assert code == 0, capsys.readouterr()
    rows = {r["question_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {*ids, plain}
    for battle_id in ids:
        for side in ("conversation_a", "conversation_b"):
            users = [m for m in rows[battle_id][side] if m["role"] == "user"]
            assert users[0]["images"] == [stored[battle_id]]
    assert all("images" not in m for m in rows[plain]["conversation_a"])
    written = sorted(folder.iterdir())
    assert [p.name for p in written] == sorted(f"{sha}.png" for sha in stored.values())
    for path in written:
        original = app.state.images.path(path.stem)
        assert path.read_bytes() == original.read_bytes()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
    again = tmp_path / "again.db"  # the export read back: the image battles are in the vision category
    assert arena_cli(["battles", "import", str(out), "--db", str(again), "--models", str(settings.models)]) == 0
    conn = sqlite3.connect(again)
    categories = [row[0].split() for row in conn.execute("SELECT categories FROM votes ORDER BY created")]
    conn.close()
    assert sorted("vision" in c for c in categories) == [False, True, True]


# -- the models' capability on /admin and in `arena models` ---------------------------------


async def test_admin_and_arena_models_show_vision(vision_app, tmp_path: Path, capsys) -> None:
    app = vision_app()
    async with serve(app) as client:
        r = await client.get("/admin", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 200
        table = parse_html(r.text).one("table")
        header = [th.text() for th in table.all("th")]
        column = header.index("Vision")
        shown = {}
        for row in table.all("tr")[1:]:
            cells = row.all("td")
            shown[cells[0].one("code").text()] = cells[column].text()
        assert shown == {**dict.fromkeys(TEXT, "no"), **dict.fromkeys(SEEING, "yes")}
    settings = app.state.settings
    port = str(free_port())  # no server there: the models file's view
    assert arena_cli(["models", "--models", str(settings.models), "--db", str(settings.db), "--port", port]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "ENGINE", "VISION"]
    at = lines[0].index("VISION")
    rows = [line for line in lines[1:] if line.strip() and not set(line) <= {"-", " "}]
    listed = {line.split()[0]: line[at:].split()[0] for line in rows}
    assert listed == {**dict.fromkeys(TEXT, "no"), **dict.fromkeys(SEEING, "yes")}
    flags = ["--models", str(settings.models), "--db", str(settings.db), "--port", port]
    assert arena_cli(["models", "add", "eye-9", "--engine", "scripted", "--vision", *flags]) == 0
    assert arena_cli(["models", *flags]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("ID "))
    row = next(line for line in lines if line.startswith("eye-9 "))
    assert row[header.index("VISION") :].split()[0] == "yes"
