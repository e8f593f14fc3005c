"""Flagged battles: a flag taken after the vote removes it from the pair counts; a vote on a
battle flagged before it is stored with its flags and never counted; the votes table keeps both."""

from __future__ import annotations

import pytest

from app.errors import Invalid, NotFound
from app.store.flags import flag_battle
from tests.helpers.arena import db_rows
from tests.test_arena_votes import new_battle


def overall_counts(app: object) -> int:
    rows = db_rows(app, "SELECT wins_a + wins_b + ties + bothbad AS n FROM pair_counts WHERE category = 'overall'")
    return sum(r["n"] for r in rows)


async def test_flagging_a_voted_battle_takes_its_vote_off_the_counts(arena) -> None:
    async with arena() as c:
        store = c.app.state.store
        kept, flagged = await new_battle(c), await new_battle(c)
        for battle_id in (kept, flagged):
            assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "model_a"})).status_code == 200
        assert overall_counts(c.app) == 2
        assert await store.write(flag_battle(flagged, "identity")) is True
        assert await store.write(flag_battle(flagged, "identity")) is False  # once per reason
        assert overall_counts(c.app) == 1
        await store.write(flag_battle(flagged, "moderation"))  # a second reason takes nothing more off
        assert overall_counts(c.app) == 1
        votes = {r["battle_id"]: r["flags"] for r in db_rows(c.app, "SELECT battle_id, flags FROM votes")}
        assert votes == {kept: "", flagged: "identity moderation"}


async def test_a_vote_on_a_flagged_battle_is_stored_but_not_counted(arena) -> None:
    async with arena() as c:
        battle_id = await new_battle(c)
        await c.app.state.store.write(flag_battle(battle_id, "moderation"))
        assert (await c.post(f"/api/v1/battles/{battle_id}/vote", json={"winner": "tie"})).status_code == 200
        assert overall_counts(c.app) == 0
        assert [r["flags"] for r in db_rows(c.app, "SELECT flags FROM votes")] == ["moderation"]


async def test_flag_refuses_unknown_battles_and_reasons(arena) -> None:
    async with arena() as c:
        with pytest.raises(NotFound):
            await c.app.state.store.write(flag_battle("nope", "identity"))
        with pytest.raises(Invalid):
            flag_battle("nope", "spam")
