"""Style features and style control (app.rating.style, app.rating.style_control)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.rating import (
    STYLE_FEATURE_NAMES,
    StyleFeatures,
    aggregate_battles,
    compute_style_leaderboard,
    fit_bradley_terry,
    fit_style_control,
    style_design,
    style_features,
)
from app.rating.numerics import expit

TRICKY = """\
# Title

Some **bold** text and __also bold__ and `**not bold**` in code.
A snake_case__name__ is not bold, nor is ** spaced **.

```python
# not a header
- not a list item
**not bold**
```

## Section
- item one with **bold**
* item two
+ item three
1. numbered
2) numbered too
- - -
***
    #not a header (no space)
#hashtag is not a header

~~~
# inside a tilde fence
~~~
####### seven hashes is not a header
``inline `code` with **bold**`` then **real**
"""


def test_style_features_on_tricky_markdown() -> None:
    # headers: "# Title", "## Section" (not in fences, not "#hashtag", not 7 #s);
    # list items: "-", "*", "+", "1.", "2)" lines (not "- - -" or "***" breaks);
    # bold: **bold**, __also bold__, **bold** in the item, **real** after a
    # double-backtick code span (not inside code, not snake_case__name__)
    f = style_features(TRICKY, 321)
    assert f == StyleFeatures(tokens=321, headers=2, list_items=5, bold=4)
    assert f.as_tuple() == (321, 2, 5, 4)
    assert len(STYLE_FEATURE_NAMES) == 4


def test_unclosed_fence_hides_the_rest() -> None:
    text = "# one\n```\n# two\n**b**\n- x\n"
    assert style_features(text, 0) == StyleFeatures(0, 1, 0, 0)


def test_plain_text_and_sums() -> None:
    assert style_features("Just a sentence.", 4) == StyleFeatures(4, 0, 0, 0)
    total = style_features("# a\n- b", 5) + style_features("**c**", 2)
    assert total == StyleFeatures(7, 1, 1, 1)
    with pytest.raises(ValueError):
        style_features("x", -1)


def test_style_design_normalises_and_z_scores() -> None:
    fa = np.array([[10, 0], [0, 0], [5, 0], [1, 0]])
    fb = np.array([[0, 0], [10, 0], [5, 0], [3, 0]])
    x, varies = style_design(fa, fb)
    raw = np.array([10 / 11, -10 / 11, 0.0, -2 / 5])
    np.testing.assert_allclose(x[:, 0], (raw - raw.mean()) / raw.std())
    assert varies.tolist() == [True, False]
    assert np.all(x[:, 1] == 0)


def planted(n: int, seed: int, beta: float):
    """Battles where voters like length (coefficient `beta` on the design column)
    and model m03 writes much longer answers than the others."""
    rng = np.random.default_rng(seed)
    names = np.array([f"m{k:02d}" for k in range(6)])
    strength = np.array([0.6, 0.3, 0.0, 0.0, -0.3, -0.6])
    a, b = rng.integers(0, 6, n), rng.integers(0, 6, n)
    keep = a != b
    a, b = a[keep], b[keep]
    verbose = np.where(np.arange(6) == 3, 4.0, 1.0)
    tokens_a = rng.poisson(200 * verbose[a])
    tokens_b = rng.poisson(200 * verbose[b])
    other = rng.poisson(3, size=(a.size, 3, 2))
    fa = np.column_stack([tokens_a, other[:, :, 0]])
    fb = np.column_stack([tokens_b, other[:, :, 1]])
    x, _ = style_design(fa, fb)
    win = rng.random(a.size) < expit(strength[a] - strength[b] + beta * x[:, 0])
    winner = np.where(win, "model_a", "model_b")
    return names[a], names[b], winner, fa, fb, strength


def test_style_control_recovers_a_planted_length_effect() -> None:
    a, b, w, fa, fb, strength = planted(40_000, seed=0, beta=0.5)
    fit = fit_style_control(a, b, w, fa, fb)
    assert fit.info.converged and fit.info.grad_norm <= 1e-8
    assert fit.coefficients["tokens"] == pytest.approx(0.5, abs=4 * fit.coefficient_se["tokens"])
    assert abs(fit.coefficients["tokens"] - 0.5) < 0.08
    for name in ("headers", "list_items", "bold"):  # no planted effect
        assert abs(fit.coefficients[name]) < 4 * fit.coefficient_se[name]
    truth = 1000 + 400 / math.log(10) * (strength - strength.mean())
    assert np.max(np.abs(fit.ratings - truth)) < 15
    # plain BT credits the verbose model with its length advantage
    plain = fit_bradley_terry(aggregate_battles(a, b, w))
    assert plain.ratings[3] - truth[3] > 40
    assert abs(fit.ratings[3] - truth[3]) < 15
    assert np.all(fit.lower < fit.ratings) and np.all(fit.ratings < fit.upper)
    assert np.all((fit.lower <= truth + 1) & (truth - 1 <= fit.upper))


def test_style_control_is_side_symmetric_and_anchorable() -> None:
    a, b, w, fa, fb, _ = planted(5000, seed=1, beta=0.3)
    flipped = np.where(w == "model_a", "model_b", "model_a")
    one = fit_style_control(a, b, w, fa, fb)
    two = fit_style_control(b, a, flipped, fb, fa)
    np.testing.assert_allclose(one.ratings, two.ratings, atol=1e-8)
    np.testing.assert_allclose(list(one.coefficients.values()), list(two.coefficients.values()), atol=1e-10)
    pinned = fit_style_control(a, b, w, fa, fb, anchor=("m02", 1114.0))
    assert pinned.ratings[2] == pytest.approx(1114.0)
    np.testing.assert_allclose(pinned.ratings - one.ratings, 1114.0 - one.ratings[2])


def test_constant_feature_is_reported_as_not_identified() -> None:
    a, b, w, fa, fb, _ = planted(3000, seed=2, beta=0.3)
    fa[:, 2] = 0
    fb[:, 2] = 0
    fit = fit_style_control(a, b, w, fa, fb)
    assert fit.coefficients["list_items"] == 0.0
    assert fit.coefficient_se["list_items"] == math.inf
    assert np.isfinite(fit.ratings).all()


def test_style_leaderboard_rows() -> None:
    a, b, w, fa, fb, _ = planted(4000, seed=3, beta=0.4)
    board = compute_style_leaderboard(a, b, w, fa, fb, min_votes=1)
    assert [r.model for r in board.rows][0] == "m00"
    assert board.coefficients is not None and set(board.coefficients) == set(STYLE_FEATURE_NAMES)
    assert all(r.ci_lower < r.rating < r.ci_upper for r in board.rows)
    assert sum(r.votes for r in board.rows) == 2 * a.size
