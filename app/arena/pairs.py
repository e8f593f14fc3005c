"""Drawing the two models of an anonymous battle (pure; the caller passes the random source)."""

from __future__ import annotations

import random
from collections.abc import Sequence


class NotEnoughModels(Exception):
    pass


def pair_probability(weights: dict[str, float], a: str, b: str) -> float:
    """Probability that the unordered pair {a, b} is drawn by :func:`draw_pair`."""
    total = sum(weights.values())
    wa, wb = weights[a], weights[b]
    return wa / total * wb / (total - wa) + wb / total * wa / (total - wb)


def draw_pair(
    candidates: Sequence[tuple[str, float]], rng: random.Random, *, vision: bool = False
) -> tuple[str, str, float]:
    """Draw two different models, each in proportion to its weight, in random order.

    Uniform when all weights are equal. Models with weight 0 are never drawn. Returns
    (model_a, model_b, probability of the unordered pair). ``vision``: the candidates are the
    vision models of a battle about an image (only the refusal's wording changes).
    """
    weights = {model: float(w) for model, w in candidates if w > 0}
    if len(weights) < 2:
        if vision:
            raise NotEnoughModels(
                "A battle about an image needs at least two active vision models, and this arena has"
                f" {len(weights)}; send the prompt without the image, or try again later."
            )
        raise NotEnoughModels("The arena needs at least two active models for a battle.")
    names = list(weights)
    first = rng.choices(names, [weights[n] for n in names])[0]
    rest = [n for n in names if n != first]
    second = rng.choices(rest, [weights[n] for n in rest])[0]
    if rng.random() < 0.5:  # the first draw favours heavy models; their side must not
        first, second = second, first
    return first, second, pair_probability(weights, first, second)
