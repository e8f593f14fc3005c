"""schemathesis against a running server's own OpenAPI schema (``/schema``): every operation of
``/v1``, ``/api/v1`` and the admin API gets cases that fit the schema (positive) and cases that
break it (negative), sent over HTTP; the answers are counted by status."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

API = r"^/(v1|api/v1)/"


@dataclass
class Result:
    operations: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())

    def count(self, hundred: int) -> int:
        """Answers in one status class (2 for 2xx, 5 for 5xx)."""
        return sum(n for code, n in self.statuses.items() if code // 100 == hundred)


def run(base: str, examples: int, headers: dict[str, str], known: dict[str, str]) -> Result:
    """``examples`` cases per operation and mode: positive, negative, and positive again with the
    path's ids taken from ``known`` (an existing battle, a model), so cases get past the lookup.
    ``headers`` go with each case (the admin bearer token)."""
    schema = schemathesis.openapi.from_url(f"{base}/schema").include(path_regex=API)
    result = Result()
    for found in schema.get_all_operations():
        operation = found.ok()
        result.operations.append(f"{operation.method.upper()} {operation.path}")
        ids = {k: v for k, v in known.items() if "{" + k + "}" in operation.path}
        strategies = [operation.as_strategy(generation_mode=m) for m in schemathesis.GenerationMode]
        if ids:
            strategies.append(operation.as_strategy(path_parameters=ids))

        @settings(
            max_examples=len(strategies) * examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(*strategies))
        def send(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, headers=headers, timeout=60)
            result.statuses[response.status_code] += 1
            if response.status_code >= 500:
                result.server_errors.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        send()
    return result
