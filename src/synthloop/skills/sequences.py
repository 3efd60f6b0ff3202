"""Find the next term of a sequence: arithmetic, geometric, second-order, interleaved and
Fibonacci-like. An item is kept only when every rule family that fits the shown terms predicts
the same next term, so no item is ambiguous within the families the skill teaches."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from synthloop.skills.answers import score_number
from synthloop.skills.base import Skill


def diffs(terms: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(terms)]


def predict_arithmetic(t: list[int]) -> int | None:
    d = diffs(t)
    return t[-1] + d[0] if len(set(d)) == 1 else None


def predict_geometric(t: list[int]) -> int | None:
    if 0 in t[:-1] or any(b % a for a, b in itertools.pairwise(t)):
        return None
    ratios = {b // a for a, b in itertools.pairwise(t)}
    return t[-1] * ratios.pop() if len(ratios) == 1 else None


def predict_second_order(t: list[int]) -> int | None:
    d2 = diffs(diffs(t))
    return t[-1] + diffs(t)[-1] + d2[0] if len(t) >= 4 and len(set(d2)) == 1 else None


def predict_interleaved(t: list[int]) -> int | None:
    evens, odds = t[0::2], t[1::2]
    if len(evens) < 3 or len(odds) < 2:
        return None
    nxt = evens if len(t) % 2 == 0 else odds  # the next term continues this sub-sequence
    # the other sub-sequence must be arithmetic too
    other = odds if nxt is evens else evens
    return predict_arithmetic(nxt) if predict_arithmetic(other) is not None else None


def predict_fibonacci(t: list[int]) -> int | None:
    ok = all(c == a + b for a, b, c in zip(t, t[1:], t[2:], strict=False))
    return t[-1] + t[-2] if ok else None


PREDICTORS: dict[str, Callable[[list[int]], int | None]] = {
    "arithmetic": predict_arithmetic,
    "geometric": predict_geometric,
    "second_order": predict_second_order,
    "interleaved": predict_interleaved,
    "fibonacci": predict_fibonacci,
}


def predictions(terms: list[int]) -> set[int]:
    """The next terms predicted by every family that fits; one element means unambiguous."""
    return {p for predict in PREDICTORS.values() if (p := predict(terms)) is not None}


def draw(rng: random.Random, difficulty: int) -> tuple[list[int], list[str]]:
    kind = rng.choice(
        {
            1: ["arithmetic"],
            2: ["arithmetic", "geometric"],
            3: ["geometric", "second_order"],
            4: ["second_order", "interleaved"],
            5: ["interleaved", "fibonacci"],
        }[difficulty]
    )
    if kind == "arithmetic":
        a, d = rng.randint(1, 20), rng.choice([x for x in range(-9, 10) if x])
        terms = [a + d * i for i in range(5)]
        return terms, [f"each term adds {d}", f"{terms[-1]} + {d} = {terms[-1] + d}"]
    if kind == "geometric":
        a, r = rng.randint(1, 5), rng.randint(2, 4)
        terms = [a * r**i for i in range(5)]
        return terms, [f"each term is multiplied by {r}", f"{terms[-1]} * {r} = {terms[-1] * r}"]
    if kind == "second_order":
        a, d, s = rng.randint(1, 10), rng.randint(1, 5), rng.randint(1, 4)
        terms = [a + d * i + s * i * (i - 1) // 2 for i in range(6)]
        d1 = diffs(terms)
        return terms, [
            f"differences: {', '.join(map(str, d1))}",
            f"they grow by {s}, next difference {d1[-1] + s}",
            f"{terms[-1]} + {d1[-1] + s} = {terms[-1] + d1[-1] + s}",
        ]
    if kind == "interleaved":
        a, da, b, db = rng.randint(1, 9), rng.randint(1, 6), rng.randint(20, 40), rng.randint(-6, -1)
        terms = [a + da * (i // 2) if i % 2 == 0 else b + db * (i // 2) for i in range(7)]
        return terms, [
            f"odd positions add {da}: {', '.join(map(str, terms[0::2]))}",
            f"even positions add {db}: {', '.join(map(str, terms[1::2]))}",
            f"next is an even position: {terms[-2]} + {db} = {terms[-2] + db}",
        ]
    a, b = rng.randint(1, 6), rng.randint(1, 6)
    terms = [a, b]
    while len(terms) < 7:
        terms.append(terms[-1] + terms[-2])
    return terms, ["each term is the sum of the two before it", f"{terms[-2]} + {terms[-1]} = {terms[-2] + terms[-1]}"]


def make_sequence(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    while True:
        terms, steps = draw(rng, difficulty)
        predicted = predictions(terms)
        if len(predicted) == 1:
            return f"What is the next term: {', '.join(map(str, terms))}, ?", steps, str(predicted.pop())


SEQUENCES = Skill("sequences", "continue arithmetic, geometric and recursive sequences", make_sequence, score_number)
