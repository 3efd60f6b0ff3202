"""Templated word problems: a person's count of things changes step by step (gets, gives away,
buys packs of, shares equally). Difficulty is the number of steps; every count stays a
non-negative integer, and every share divides evenly."""

from __future__ import annotations

import random

from synthloop.skills.answers import score_number
from synthloop.skills.base import Skill

NAMES = ("Maya", "Leo", "Amara", "Kenji", "Sofia", "Omar", "Priya", "Jonas", "Lena", "Tariq")
THINGS = ("marbles", "stickers", "apples", "pencils", "stamps", "cards", "shells", "coins")


def one_step(rng: random.Random, count: int, name: str, friend: str, things: str) -> tuple[str, str, int] | None:
    kind = rng.choice(["gets", "gives", "packs", "shares"])
    if kind == "gets":
        n = rng.randint(2, 15)
        return f"{name} finds {n} more {things}.", f"{count} + {n} = {count + n}", count + n
    if kind == "gives" and count > 1:
        n = rng.randint(1, count - 1)
        return f"{name} gives {n} {things} to {friend}.", f"{count} - {n} = {count - n}", count - n
    if kind == "packs":
        packs, size = rng.randint(2, 4), rng.randint(2, 6)
        text = f"{name} buys {packs} packs of {size} {things}."
        return (
            text,
            f"{packs} * {size} = {packs * size}, {count} + {packs * size} = {count + packs * size}",
            count + packs * size,
        )
    if kind == "shares":
        ways = [k for k in (2, 3, 4) if count % k == 0 and count // k > 0]
        if ways:
            k = rng.choice(ways)
            text = f"{name} splits the {things} equally among {k} jars and keeps one jar."
            return text, f"{count} / {k} = {count // k}", count // k
    return None


def make_word_problem(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    name, friend = rng.sample(NAMES, 2)
    things = rng.choice(THINGS)
    count = rng.randint(5, 30)
    text, steps = [f"{name} has {count} {things}."], []
    while len(steps) < difficulty:
        step = one_step(rng, count, name, friend, things)
        if step is not None:
            text.append(step[0])
            steps.append(step[1])
            count = step[2]
    question = " ".join(text) + f" How many {things} does {name} have now?"
    return question, steps, str(count)


WORD_PROBLEMS = Skill(
    "word_problems", "multi-step templated word problems about counts", make_word_problem, score_number
)
