"""Flagging a battle afterwards: the admin API and `arena battles flag` take its vote off the
default board (seen through the leaderboard API), log the flag, and keep the battle out of the
preference export."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from app.cli import main
from tests.helpers.arena import csrf, db_rows, parse_html

TOKEN = "moderation-admin-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


async def voted_battle(c: Any, winner: str = "model_a") -> str:
    r = await c.post("/api/v1/battles", json={"prompt": "Which is better?", "wait": True})
    assert r.status_code == 201, r.text
    battle_id = r.json()["id"]
    assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": winner})).status_code == 200
    return str(battle_id)


async def total_votes(c: Any) -> int:
    board = (await c.get("/api/v1/leaderboard")).json()
    return int(board["total_votes"])


async def test_admin_flag_takes_the_vote_off_the_board(arena) -> None:
    async with arena(admin_token=TOKEN) as c:
        first, second = await voted_battle(c), await voted_battle(c, "model_b")
        assert await total_votes(c) == 2

        r = await c.post(
            f"/api/v1/admin/battles/{first}/flag", json={"reason": "moderation", "note": "slur"}, headers=ADMIN
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"id": first, "flags": ["moderation"], "changed": True}
        assert await total_votes(c) == 1
        (row,) = db_rows(c.app, "SELECT * FROM moderation_log")
        assert (row["source"], row["checker"], row["reason"], row["battle_id"]) == (
            "flag",
            "admin",
            "moderation: slur",
            first,
        )
        assert row["excerpt"] == "Which is better?" and set(row["model"].split()) == {"alpha", "beta"}

        again = await c.post(f"/api/v1/admin/battles/{first}/flag", json={"reason": "moderation"}, headers=ADMIN)
        assert again.json()["changed"] is False and await total_votes(c) == 1
        both = await c.post(f"/api/v1/admin/battles/{first}/flag", json={"reason": "identity"}, headers=ADMIN)
        assert both.json()["flags"] == ["moderation", "identity"] and await total_votes(c) == 1
        assert (
            db_rows(c.app, "SELECT flags FROM votes WHERE battle_id = ?", (first,))[0]["flags"] == "moderation identity"
        )

        # the server keeps serving, and the other vote still counts
        await voted_battle(c)
        assert await total_votes(c) == 2
        assert db_rows(c.app, "SELECT flags FROM votes WHERE battle_id = ?", (second,))[0]["flags"] == ""


async def test_admin_flag_refuses_bad_requests(arena) -> None:
    async with arena(admin_token=TOKEN) as c:
        battle_id = await voted_battle(c)
        r = await c.post(f"/api/v1/admin/battles/{battle_id}/flag", json={"reason": "dislike"}, headers=ADMIN)
        assert r.status_code == 400 and r.json()["error"]["param"] == "reason"
        r = await c.post("/api/v1/admin/battles/nope/flag", json={"reason": "moderation"}, headers=ADMIN)
        assert r.status_code == 404
        r = await c.post(f"/api/v1/admin/battles/{battle_id}/flag", json={"reason": "moderation"})
        assert r.status_code == 401
        assert await total_votes(c) == 1 and db_rows(c.app, "SELECT * FROM moderation_log") == []


async def test_a_vote_after_the_flag_is_stored_but_not_counted(arena) -> None:
    async with arena(admin_token=TOKEN) as c:
        r = await c.post("/api/v1/battles", json={"prompt": "Hi", "wait": True})
        battle_id = r.json()["id"]
        r = await c.post(f"/api/v1/admin/battles/{battle_id}/flag", json={}, headers=ADMIN)
        assert r.json()["flags"] == ["moderation"]
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})).status_code == 200
        assert await total_votes(c) == 0
        assert db_rows(c.app, "SELECT flags FROM votes")[0]["flags"] == "moderation"


async def test_cli_flag_and_the_preference_export(arena, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    async with arena() as c:
        kept, flagged = await voted_battle(c), await voted_battle(c, "model_b")
        db = c.app.state.settings.db
    for key in [k for k in os.environ if k.startswith("ARENA_")]:
        monkeypatch.delenv(key)
    out = tmp_path / "prefs.jsonl"
    assert main(["battles", "export", "--db", str(db), "--preferences", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2

    assert main(["battles", "flag", flagged, "--db", str(db), "--note", "found later"]) == 0
    assert f"flagged battle {flagged} (moderation)" in capsys.readouterr().out
    assert main(["battles", "flag", flagged, "--db", str(db)]) == 0
    assert "already flagged" in capsys.readouterr().out
    assert main(["battles", "flag", "no-such-battle", "--db", str(db)]) == 1
    assert "No such battle" in capsys.readouterr().err

    assert main(["battles", "export", "--db", str(db), "--preferences", str(out)]) == 0
    assert "1 flagged" in capsys.readouterr().out
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["metadata"]["battle_id"] == kept

    assert main(["leaderboard", "--db", str(db), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_votes"] == 1


async def test_the_admin_page_flags_a_battle(arena) -> None:
    async with arena(admin_token=TOKEN) as c:
        battle_id = await voted_battle(c)
        headers = await csrf(c)
        form = {"battle_id": battle_id, "reason": "identity", "note": "said it was alpha"}
        assert (await c.post("/admin/battles/flag", data=form, headers=headers)).status_code == 401
        assert (await c.post("/admin/login", data={"token": TOKEN}, headers=headers)).status_code == 200
        page = parse_html((await c.get("/admin")).text)
        flag_form = page.one("form", hx_post="/admin/battles/flag")
        assert {i.attrs["name"] for i in flag_form.all("input")} | {"reason"} == {"battle_id", "reason", "note"}

        assert await total_votes(c) == 1  # the board is cached now: the flag must refresh it
        r = await c.post("/admin/battles/flag", data=form, headers=headers)
        assert r.status_code == 200 and r.text == f"Battle {battle_id} flagged (identity)."
        assert await total_votes(c) == 0
        (row,) = db_rows(c.app, "SELECT * FROM moderation_log")
        assert (row["checker"], row["reason"]) == ("admin", "identity: said it was alpha")
        r = await c.post("/admin/battles/flag", data={**form, "battle_id": "<b>nope</b>"}, headers=headers)
        assert r.status_code == 404 and r.headers["hx-retarget"] == "#flash" and "<b>nope" not in r.text


async def test_the_battle_export_leaves_flagged_votes_out(arena, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    async with arena(admin_token=TOKEN) as c:
        kept, flagged = await voted_battle(c), await voted_battle(c, "model_b")
        r = await c.post(f"/api/v1/admin/battles/{flagged}/flag", json={"reason": "moderation"}, headers=ADMIN)
        assert r.status_code == 200, r.text
        db = c.app.state.settings.db
    for key in [k for k in os.environ if k.startswith("ARENA_")]:
        monkeypatch.delenv(key)
    out = tmp_path / "battles.jsonl"
    assert main(["battles", "export", str(out), "--db", str(db)]) == 0
    printed = capsys.readouterr().out
    assert "exported 1 battles" in printed and "left out 1 flagged" in printed
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["question_id"] == kept

    fresh = tmp_path / "fresh.db"
    assert main(["battles", "import", str(out), "--db", str(fresh)]) == 0
    assert "imported 1 battles" in capsys.readouterr().out
    assert main(["leaderboard", "--db", str(fresh), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_votes"] == 1
