"""A pairwise run over rule engines into a database, for the resume test to kill with SIGKILL.

``python -m tests.eval.killable DB JUDGE_DELAY`` prints the run's result as JSON when it finishes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from app.eval.runs import run_pairwise
from tests.eval.helpers import RuleEngine, answers_with, eval_context, judge_rule, prompts

PROMPTS = 12
MODELS = ["alpha", "gamma"]
BASELINE = "beta"


async def main(db: Path, delay: float) -> None:
    engines = {
        "alpha": RuleEngine(answers_with("GOOD GOOD")),
        "gamma": RuleEngine(answers_with("GOOD")),
        "beta": RuleEngine(answers_with("plain")),
        "judge": RuleEngine(judge_rule, delay=delay, parallel=1),
    }
    async with eval_context(db, engines, concurrency=1) as ctx:
        result = await run_pairwise(ctx, prompts(PROMPTS), MODELS, "judge", BASELINE, run_id="resume")
    answers = sum(len(engines[m].requests) for m in [*MODELS, BASELINE])
    print(
        json.dumps({"judge_requests": len(engines["judge"].requests), "answer_requests": answers, **result.as_json()})
    )


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), float(sys.argv[2])))
