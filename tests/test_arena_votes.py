"""The vote rules, the pair counts, rate limits and prompt limits, through the JSON API and the
pages, in-process over scripted engines."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter

import pytest

from app.errors import Conflict
from app.server import create_app
from app.settings import Settings
from app.store import battles as q
from app.store import migrations
from tests.helpers.arena import Client, csrf, db_rows, finish, parse_html, serve, start_page_battle
from tests.helpers.server import scripted_models_toml

WINNERS = ["model_a", "model_b", "tie", "tie (bothbad)"]


async def new_battle(client: Client, wait: bool = True, **body: object) -> str:
    r = await client.post("/api/v1/battles", json={"prompt": "Hello?", "wait": wait, **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def error_message(r: object) -> str:
    body = r.json()  # type: ignore[attr-defined]
    return str(body["error"]["message"])


async def test_second_vote_is_409(arena) -> None:
    async with arena() as c:
        battle_id = await new_battle(c)
        first = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})
        assert first.status_code == 200
        assert set(first.json().values()) == {"alpha", "beta"}
        second = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert second.status_code == 409
        assert error_message(second) == "This battle already has a vote."
        page = await c.post(f"/battle/{battle_id}/vote", data={"winner": "model_a"}, headers=await csrf(c))
        assert page.status_code == 409 and page.headers["hx-retarget"] == "#flash"
        rows = db_rows(c.app, "SELECT winner FROM votes WHERE battle_id = ?", (battle_id,))
        assert [r["winner"] for r in rows] == ["tie"]


async def test_concurrent_votes_on_one_battle_store_one(arena) -> None:
    async with arena() as c:
        battle_id = await new_battle(c)
        replies = await asyncio.gather(
            *[c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": w}) for w in WINNERS * 3]
        )
        assert sorted(r.status_code for r in replies) == [200] + [409] * 11
        assert db_rows(c.app, "SELECT COUNT(*) FROM votes")[0][0] == 1
        total = db_rows(
            c.app, "SELECT SUM(wins_a + wins_b + ties + bothbad) FROM pair_counts WHERE category = 'overall'"
        )
        assert total[0][0] == 1


async def test_vote_before_both_answers_complete_is_409(arena) -> None:
    async with arena() as c:
        slow = c.app.state.models.get("beta").engine
        slow.replies, slow.delay = ["one two three four five six"], 0.05
        battle_id = await new_battle(c, wait=False)
        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 409
        assert error_message(r) == "Both answers must be complete before voting."
        page = await c.post(f"/battle/{battle_id}/vote", data={"winner": "model_a"}, headers=await csrf(c))
        assert page.status_code == 409
        assert "must be complete" in parse_html(page.text).one("div", cls="flash").text()
        assert (await c.get(f"/api/v1/battles/{battle_id}")).json()["status"] == "generating"
        await finish(c, battle_id)
        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 200


async def test_store_refuses_a_vote_on_missing_answers(tmp_path) -> None:
    """The rule holds in the store too, for a battle no longer in memory."""
    path = tmp_path / "arena.db"
    migrations.apply(str(path))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    q.create_battle(q.NewBattle("b1", "anony", "x", "y", 1.0, "v", "hi"))(conn)
    q.add_prompt("b1", 1, "hi")(conn)
    q.add_answer(q.Answer("b1", "a", 1, "A", 1, 1, 0.1, 0.2, "stop", style=(1, 0, 0, 0)))(conn)
    with pytest.raises(Conflict, match="Both answers must be complete"):
        q.record_vote("b1", "tie", "v", ["overall"], 1)(conn)
    q.add_answer(q.Answer("b1", "b", 1, "B", 1, 1, 0.1, 0.2, "stop", style=(1, 0, 0, 0)))(conn)
    assert q.record_vote("b1", "tie", "v", ["overall"], 1)(conn) == ("x", "y")


async def test_unknown_battle_is_404(arena) -> None:
    async with arena() as c:
        for path in ("vote", "messages"):
            body = {"winner": "tie"} if path == "vote" else {"prompt": "hi"}
            r = await c.post(f"/api/v1/battles/no-such-battle/{path}", json=body)
            assert r.status_code == 404, path
            assert error_message(r) == "No such battle."
        assert (await c.get("/api/v1/battles/no-such-battle")).status_code == 404
        assert (await c.get("/api/v1/battles/no-such-battle/events")).status_code == 404
        page = await c.post("/battle/no-such-battle/vote", data={"winner": "tie"}, headers=await csrf(c))
        assert page.status_code == 404
        assert parse_html(page.text).one("div", cls="flash").text() == "No such battle."
        assert (await c.get("/battle/no-such-battle/events")).status_code == 404


async def test_failed_battle_cannot_be_voted_and_is_flagged(arena) -> None:
    async with arena() as c:
        broken = c.app.state.models.get("beta").engine
        broken.replies, broken.fail_after = ["half an answer then trouble"], 2
        battle_id = await new_battle(c)
        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 409
        assert error_message(r) == "A model failed to answer in this battle, so it cannot be voted on."
        page = await c.post(f"/battle/{battle_id}/vote", data={"winner": "model_a"}, headers=await csrf(c))
        assert page.status_code == 409
        assert "cannot be voted on" in parse_html(page.text).one("div", cls="flash").text()
        assert db_rows(c.app, "SELECT status FROM battles WHERE id = ?", (battle_id,))[0][0] == "failed"
        assert (await c.get(f"/api/v1/battles/{battle_id}")).json()["status"] == "failed"
        assert db_rows(c.app, "SELECT COUNT(*) FROM votes")[0][0] == 0
        assert db_rows(c.app, "SELECT COUNT(*) FROM pair_counts")[0][0] == 0


async def test_bad_winner_is_400(arena) -> None:
    async with arena() as c:
        battle_id = await new_battle(c)
        for winner in ("alpha", "A", "", "model_c", None, 1):
            r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": winner})
            assert r.status_code == 400, winner
            assert r.json()["error"]["param"] == "winner"
        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={})
        assert r.status_code == 400
        page = await c.post(f"/battle/{battle_id}/vote", data={"winner": "alpha"}, headers=await csrf(c))
        assert page.status_code == 400
        assert parse_html(page.text).one("div", cls="flash").text().startswith("winner must be one of")
        assert db_rows(c.app, "SELECT COUNT(*) FROM votes")[0][0] == 0
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie (bothbad)"})).status_code == 200


async def test_counts_follow_the_votes(arena) -> None:
    """After many votes, the running pair counts equal what the votes table says."""
    async with arena({"alpha": ["A"], "beta": ["B"], "gamma": ["C"]}) as c:
        ids = [await new_battle(c) for _ in range(24)]
        for i, battle_id in enumerate(ids):
            r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": WINNERS[i % 4]})
            assert r.status_code == 200
        expected: Counter[tuple[str, str, str]] = Counter()
        for v in db_rows(c.app, "SELECT model_a, model_b, winner FROM votes"):
            a, b, w = v["model_a"], v["model_b"], v["winner"]
            if a > b:
                a, b, w = b, a, {"model_a": "model_b", "model_b": "model_a"}.get(w, w)
            expected[(a, b, w)] += 1
        got: Counter[tuple[str, str, str]] = Counter()
        for row in db_rows(c.app, "SELECT * FROM pair_counts WHERE mode = 'anony' AND category = 'overall'"):
            assert row["model_a"] < row["model_b"]
            for column, winner in (
                ("wins_a", "model_a"),
                ("wins_b", "model_b"),
                ("ties", "tie"),
                ("bothbad", "tie (bothbad)"),
            ):
                if row[column]:
                    got[(row["model_a"], row["model_b"], winner)] = row[column]
        assert got == expected and sum(got.values()) == 24


async def test_counts_and_vote_commit_together(arena) -> None:
    """If the count update fails, the vote is not stored either (one transaction)."""
    async with arena() as c:
        battle_id = await new_battle(c)
        store = c.app.state.store

        def break_counts(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TRIGGER no_counts BEFORE INSERT ON pair_counts BEGIN SELECT RAISE(ABORT, 'counts broken'); END"
            )

        await store.write(break_counts)
        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 500
        assert db_rows(c.app, "SELECT COUNT(*) FROM votes")[0][0] == 0
        assert db_rows(c.app, "SELECT status FROM battles WHERE id = ?", (battle_id,))[0][0] == "open"
        assert db_rows(c.app, "SELECT COUNT(*) FROM pair_counts")[0][0] == 0

        await store.write(lambda conn: conn.execute("DROP TRIGGER no_counts"))
        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 200
        assert db_rows(c.app, "SELECT COUNT(*) FROM votes")[0][0] == 1
        assert db_rows(c.app, "SELECT SUM(wins_a + wins_b) FROM pair_counts WHERE category = 'overall'")[0][0] == 1


async def test_vote_write_is_atomic_on_a_plain_connection(tmp_path) -> None:
    """The write function alone: a failure in the counts leaves no vote and no status change."""
    path = tmp_path / "arena.db"
    migrations.apply(str(path))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for write in (
        q.create_battle(q.NewBattle("b1", "anony", "x", "y", 0.5, "v", "hi")),
        q.add_prompt("b1", 1, "hi"),
        q.add_answer(q.Answer("b1", "a", 1, "A", 1, 1, 0.1, 0.2, "stop", style=(1, 0, 0, 0))),
        q.add_answer(q.Answer("b1", "b", 1, "B", 1, 1, 0.1, 0.2, "stop", style=(1, 0, 0, 0))),
    ):
        write(conn)
    conn.execute("CREATE TRIGGER no_counts BEFORE UPDATE ON pair_counts BEGIN SELECT RAISE(ABORT, 'no'); END")
    conn.execute("INSERT INTO pair_counts (mode, category, model_a, model_b) VALUES ('anony', 'overall', 'x', 'y')")
    conn.execute("SAVEPOINT w")  # as the store's writer runs each write
    with pytest.raises(sqlite3.IntegrityError):
        q.record_vote("b1", "model_a", "v", ["overall", "no_ties"], 1)(conn)
    conn.execute("ROLLBACK TO w")
    conn.execute("RELEASE w")
    assert conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 0
    assert conn.execute("SELECT status FROM battles").fetchone()[0] == "open"


async def test_vote_rate_limit_is_429_with_retry_after(arena) -> None:
    async with arena(vote_rate="2/60") as c:
        ids = [await new_battle(c) for _ in range(3)]
        for battle_id in ids[:2]:
            assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200
        r = await c.post(f"/api/v1/battles/{ids[2]}/vote", json={"winner": "tie"})
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["error"]["type"] == "rate_limit_exceeded"
        page = await c.post(f"/battle/{ids[2]}/vote", data={"winner": "tie"}, headers=await csrf(c))
        assert page.status_code == 429 and 1 <= int(page.headers["retry-after"]) <= 60
        assert "Too many votes" in parse_html(page.text).one("div", cls="flash").text()
        assert db_rows(c.app, "SELECT COUNT(*) FROM votes")[0][0] == 2


async def test_battle_rate_limit_is_429_with_retry_after(arena) -> None:
    async with arena(battle_rate="1/30") as c:
        await new_battle(c)
        r = await c.post("/api/v1/battles", json={"prompt": "Again?"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 30
        page = await c.post("/battle", data={"prompt": "Again?", "mode": "anony"}, headers=await csrf(c))
        assert page.status_code == 429 and 1 <= int(page.headers["retry-after"]) <= 30
        assert db_rows(c.app, "SELECT COUNT(*) FROM battles")[0][0] == 1


async def test_forwarded_for_counts_only_from_a_trusted_proxy(make_app) -> None:
    async def battles_from_two_clients(**settings: object) -> list[int]:
        async with serve(make_app(battle_rate="1/60", **settings), ip="10.0.0.1") as c:
            return [
                (await c.post("/api/v1/battles", json={"prompt": "hi"}, headers={"x-forwarded-for": ip})).status_code
                for ip in ("203.0.113.7", "203.0.113.8")
            ]

    assert await battles_from_two_clients() == [201, 429]  # the header is ignored: one address
    assert await battles_from_two_clients(trusted_proxies=["10.0.0.1"]) == [201, 201]


async def test_voter_hash_is_salted_and_per_address(make_app) -> None:
    hashes = []
    for ip in ("198.51.100.1", "198.51.100.2"):
        async with serve(make_app(secret="s3cret"), ip=ip) as c:
            battle_id = await new_battle(c)
            assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200
            battle = db_rows(c.app, "SELECT voter_hash FROM battles WHERE id = ?", (battle_id,))[0][0]
            vote = db_rows(c.app, "SELECT voter_hash FROM votes WHERE battle_id = ?", (battle_id,))[0][0]
            assert battle == vote and ip not in battle and len(battle) == 32
            hashes.append(battle)
    assert hashes[0] != hashes[1]


async def test_prompt_too_long_is_400(arena) -> None:
    async with arena(max_prompt_chars=20) as c:
        r = await c.post("/api/v1/battles", json={"prompt": "x" * 21})
        assert r.status_code == 400 and error_message(r) == "The prompt is longer than 20 characters."
        assert (await c.post("/api/v1/battles", json={"prompt": "x" * 20, "wait": True})).status_code == 201
        battle_id = db_rows(c.app, "SELECT id FROM battles")[0][0]
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "y" * 21})
        assert r.status_code == 400
        for bad in ("", "   ", "a\x00b"):
            assert (await c.post("/api/v1/battles", json={"prompt": bad})).status_code == 400, repr(bad)
        assert db_rows(c.app, "SELECT COUNT(*) FROM battles")[0][0] == 1


async def test_max_turns(arena) -> None:
    async with arena(max_turns=3) as c:
        battle_id = await new_battle(c)
        for turn in (2, 3):
            r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": f"Turn {turn}?", "wait": True})
            assert r.status_code == 201 and r.json()["turn"] == turn
            assert len(r.json()["turns"]) == turn
        r = await c.post(f"/api/v1/battles/{battle_id}/messages", json={"prompt": "Turn 4?"})
        assert r.status_code == 409 and error_message(r) == "A battle has at most 3 turns; start a new one."
        assert db_rows(c.app, "SELECT turns FROM battles")[0][0] == 3
        r = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})
        assert r.status_code == 200
        assert db_rows(c.app, "SELECT turns FROM votes")[0][0] == 3


async def test_page_battle_vote_is_stored_as_anony(arena) -> None:
    async with arena() as c:
        battle_id, _ = await start_page_battle(c)
        await finish(c, battle_id)
        r = await c.post(f"/battle/{battle_id}/vote", data={"winner": "tie"}, headers=await csrf(c))
        assert r.status_code == 200
        battle = db_rows(c.app, "SELECT * FROM battles WHERE id = ?", (battle_id,))[0]
        assert battle["status"] == "voted" and battle["mode"] == "anony" and battle["pair_prob"] == 1.0
        assert {battle["model_a"], battle["model_b"]} == {"alpha", "beta"}


async def test_a_live_vote_counts_a_long_prompt_in_the_models_tokens(tmp_path) -> None:
    """600 one-letter words: 1,200 characters (a characters/4 guess says 300 tokens), but the
    models counted 600 prompt tokens, so the vote lands in long_prompt."""
    models = tmp_path / "models.toml"
    toml = scripted_models_toml({"alpha": ["Hello there."], "beta": ["Hi!"]})
    models.write_text(toml.replace("context_length = 64", "context_length = 2048"))
    settings = Settings(models=models, db=tmp_path / "arena.db", generation_rate="1000/1", model_rate="1000/1")
    async with serve(create_app(settings)) as c:
        r = await c.post("/api/v1/battles", json={"prompt": "a " * 600, "wait": True})
        assert r.status_code == 201, r.text
        battle_id = r.json()["id"]
        vote = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})
        assert vote.status_code == 200, vote.text
        categories = db_rows(c.app, "SELECT categories FROM votes WHERE battle_id = ?", (battle_id,))[0][0]
        assert "long_prompt" in categories.split()


async def test_a_vote_read_that_trails_the_writer_is_read_again(arena, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first read of the battle is stale (it misses the turn); the store refuses that with
    Changed, and the arena reads again instead of answering 409."""
    real = q.get_battle
    calls = 0

    async def stale_once(store, battle_id):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        row = await real(store, battle_id)
        return {**row, "turns": 0} if calls == 1 and row else row

    monkeypatch.setattr(q, "get_battle", stale_once)
    async with arena() as c:
        battle_id = await new_battle(c)
        vote = await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert vote.status_code == 200, vote.text
        assert calls == 2
