"""Compare and order numbers: the larger of two, then sorting longer lists with negatives and
decimals. Numbers in an item are distinct, so the order is unique."""

from __future__ import annotations

import random
from fractions import Fraction

from synthloop.skills.answers import score_number_list
from synthloop.skills.base import Skill

LEVELS = {1: (2, 99, 0), 2: (3, 99, 0), 3: (4, 999, 0), 4: (5, 999, 1), 5: (6, 999, 2)}


def show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


def make_comparison(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    count, high, decimals = LEVELS[difficulty]
    low = -high if difficulty >= 4 else 1
    values: set[Fraction] = set()
    while len(values) < count:
        values.add(Fraction(rng.randint(low * 10**decimals, high * 10**decimals), 10**decimals))
    shown = rng.sample(sorted(values), count)
    listing = ", ".join(show(v) for v in shown)
    ordered = sorted(shown)
    if count == 2:
        larger, smaller = ordered[1], ordered[0]
        question = f"Which is larger: {show(shown[0])} or {show(shown[1])}?"
        return question, [f"{show(larger)} > {show(smaller)}"], show(larger)
    steps = [f"smallest of the rest: {show(v)}" for v in ordered]
    question = f"Order from smallest to largest: {listing}"
    return question, steps, ", ".join(show(v) for v in ordered)


COMPARISON = Skill("comparison", "compare two numbers, then order lists of numbers", make_comparison, score_number_list)
