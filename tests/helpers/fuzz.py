"""Hostile input for the reliability suite: hypothesis strategies for JSON bodies, form fields
and ids, the JSON routes they are sent to, and a counter the bench reads.

``ARENA_FUZZ_EXAMPLES`` sets how many cases each fuzz test generates (small in the test tier; the
bench raises it); ``ARENA_FUZZ_REPORT`` names a file where each case appends its status code.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("ARENA_FUZZ_EXAMPLES", "25"))
ADMIN = "fuzz-admin-token"
SQL = ["' OR '1'='1", "x'); DROP TABLE votes; --", '" OR 1=1 --', "1; DELETE FROM battles", "%' --"]
NASTY = ["", "\x00", "../../etc/passwd", "..%2F..%2Fetc", "<script>alert(1)</script>", "\udcff", "\u202e", *SQL]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(NASTY),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
)


def body_like(*fields: str) -> st.SearchStrategy[dict[str, object]]:
    """A dict with the route's own field names (so validation goes past the first key) and
    any values, plus now and then a stray key."""
    return st.fixed_dictionaries({}, optional={f: json_values for f in fields}) | st.dictionaries(
        st.sampled_from([*fields, "extra"]), json_values, max_size=len(fields) + 1
    )


MESSAGE = st.fixed_dictionaries({"role": json_values | st.sampled_from(["user", "system"]), "content": json_values})
SAMPLING = ("model", "max_tokens", "temperature", "top_p", "stream", "stop", "seed", "n", "user")
CHAT = body_like(*SAMPLING, "messages") | st.fixed_dictionaries(
    {"model": st.sampled_from(["alpha", "nope", *NASTY]), "messages": st.lists(MESSAGE, max_size=3)},
    optional={k: json_values for k in SAMPLING[1:]},
)
COMPLETION = body_like(*SAMPLING, "prompt")
ids = st.sampled_from(NASTY) | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), max_size=20)

# (method, path with {id}, body strategy)
JSON_ROUTES: list[tuple[str, str, st.SearchStrategy[object]]] = [
    ("POST", "/v1/chat/completions", CHAT | json_values),
    ("POST", "/v1/completions", COMPLETION | json_values),
    ("POST", "/api/v1/battles", body_like("prompt", "mode", "models", "wait") | json_values),
    ("POST", "/api/v1/battles/{id}/messages", body_like("prompt", "wait")),
    ("POST", "/api/v1/battles/{id}/vote", body_like("winner")),
    ("POST", "/api/v1/admin/models", body_like("id", "engine", "weights", "script", "metadata", "context_length")),
    ("PATCH", "/api/v1/admin/models/{id}", body_like("name", "weights", "weight", "defaults", "metadata")),
    ("POST", "/api/v1/admin/models/{id}/{id}", json_values),
    ("DELETE", "/api/v1/admin/models/{id}", st.none()),
    ("GET", "/api/v1/battles/{id}", st.none()),
    ("GET", "/api/v1/admin/models/{id}", st.none()),
]


def record(status: int) -> None:
    report = os.environ.get("ARENA_FUZZ_REPORT")
    if report:
        with Path(report).open("a") as out:
            out.write(f"{status}\n")
