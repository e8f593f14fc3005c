"""Shared by the judge tests: three scripted models of known quality, a scripted judge that reads the
answers, and a set of stored human battles (with the verdicts worked out by hand in the comment)."""

from __future__ import annotations

import textwrap
from typing import Any

from app.engines.base import GenerationRequest
from app.engines.scripted import ScriptedEngine
from app.rating.style import style_features
from app.store import battles as q
from app.store.db import Store
from app.store.flags import flag_battle

# Answers by quality, best first; the judge below prefers the better one (in either position).
QUALITY = {"Good answer.": 3, "Meh answer.": 2, "Bad answer.": 1}
MODELS = {
    "model-x1": ("Xavier", "Good answer."),
    "model-y2": ("Yolanda", "Meh answer."),
    "model-z3": ("Zed", "Bad answer."),
}

MODELS_TOML = "".join(
    textwrap.dedent(
        f"""
        [[models]]
        id = "{model}"
        name = "{name}"
        engine = "scripted"
        script = ["{answer}"]
        metadata = {{ organization = "Org {name}" }}
        """
    )
    for model, (name, answer) in MODELS.items()
) + textwrap.dedent(
    """
    [[models]]
    id = "judge"
    engine = "scripted"
    context_length = 8192
    script = ["[[A=B]]"]
    """
)


class ReadingJudge(ScriptedEngine):
    """A judge that prefers the better answer (and grades it higher), says nothing parseable about prompts that ask for
    "unparseable", and always picks Assistant A on prompts about "position" (a biased judge)."""

    def verdict(self, text: str) -> str:
        if "Rating: [[" in text:  # single grading: by the answer's quality
            grade = {3: 9, 2: 6, 1: 2}[max(QUALITY[k] for k in QUALITY if k in text)]
            return f"Fine. Rating: [[{grade}]]"
        if "unparseable" in text:
            return "I cannot decide."
        if "position" in text:
            return "My verdict: [[A>B]]"
        a_part, b_part = text.split("<|The Start of Assistant B's")
        a = max(QUALITY[k] for k in QUALITY if k in a_part)
        b = max(QUALITY[k] for k in QUALITY if k in b_part)
        return "[[A>B]]" if a > b else "[[B>A]]" if b > a else "[[A=B]]"

    def _generate(self, request: GenerationRequest) -> Any:
        self.replies, self._turn = [self.verdict(request.messages[-1].content)], 0
        return super()._generate(request)


# (battle id, model_a, model_b, prompt, human vote); answers are each model's own.
# Worked out by hand, the judge's verdicts on the battles it decides:
#   b1 x1 vs z3: judge A (Good > Bad), human A        agree
#   b2 z3 vs x1: judge B,              human B        agree
#   b3 x1 vs y2: judge A,              human tie
#   b4 y2 vs z3: judge A,              human B        disagree
#   b5 z3 vs y2 "position": orders disagree -> tie,   human B
#   b6 "unparseable": both replies fail to parse, left out (2 parse failures)
#   b7 flagged (identity), b8 named, b9 open: not replayed
# Human H = A B tie B B; judge J = A B A A tie.
#   Without ties (1, 2, 4): 2 of 3.  With ties: equal at 1, 2 -> 2 of 5.
#   kappa: p_o = 2/5; H: A 1, B 3, tie 1; J: A 3, B 1, tie 1; p_e = (1*3 + 3*1 + 1*1) / 25 = 7/25;
#   kappa = (10/25 - 7/25) / (18/25) = 1/6.
BATTLES = [
    ("b1", "model-x1", "model-z3", "Explain tides.", "model_a", "anony"),
    ("b2", "model-z3", "model-x1", "Explain tides.", "model_b", "anony"),
    ("b3", "model-x1", "model-y2", "Explain tides.", "tie", "anony"),
    ("b4", "model-y2", "model-z3", "Explain tides.", "model_b", "anony"),
    ("b5", "model-z3", "model-y2", "A question about position.", "model_b", "anony"),
    ("b6", "model-x1", "model-z3", "An unparseable question.", "model_a", "anony"),
    ("b7", "model-x1", "model-z3", "Explain tides.", "model_a", "flagged"),
    ("b8", "model-x1", "model-z3", "Explain tides.", "model_a", "named"),
    ("b9", "model-x1", "model-z3", "Explain tides.", "", "anony"),
]


def _answer(battle_id: str, side: str, text: str) -> Any:
    style = style_features(text, 2).as_tuple()
    return q.add_answer(q.Answer(battle_id, side, 1, text, 5, 2, 0.1, 0.2, "stop", style=style))


async def seed(store: Store, battles: list[tuple[str, str, str, str, str, str]] = BATTLES) -> None:
    for battle_id, a, b, prompt, vote, kind in battles:
        mode = "named" if kind == "named" else "anony"
        await store.write(q.create_battle(q.NewBattle(battle_id, mode, a, b, 1.0, "voter", prompt)))
        await store.write(q.add_prompt(battle_id, 1, prompt))
        await store.write(_answer(battle_id, "a", MODELS[a][1]))
        await store.write(_answer(battle_id, "b", MODELS[b][1]))
        if kind == "flagged":
            await store.write(flag_battle(battle_id, "identity"))
        if vote:
            await store.write(q.record_vote(battle_id, vote, "voter", ["overall"], 1))
