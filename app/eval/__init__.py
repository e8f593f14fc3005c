"""Automatic evaluation: prompt suites, cached answers, an LLM judge (pairwise, single grading and
tournaments), and the figures read from its verdicts.

- ``suites``: JSONL prompt suites (MT-bench's ``question.jsonl`` as is), the bundled demo suite.
- ``templates`` and ``verdicts``: the editable judge prompts and the strict verdict parsers.
- ``context``: what a run needs (registry, store, metrics) and one generation at eval priority.
- ``answers`` and ``judge``: answers and verdicts, cached in the database so a run resumes.
- ``store``: the eval tables and the judge battles (mode ``judge``, never the human board's).
- ``runs``: pairwise against a baseline, single grading, tournaments, with progress.
- ``results``: MT-bench-style scores, win rates against the baseline, the judge's board.
- ``agreement``, ``replay``, ``judge_board`` and ``jobs``: judge-human agreement on the stored
  human battles, the leaderboard's judge tab, and the /admin background job.
"""
