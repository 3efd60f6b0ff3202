"""Column arithmetic with carries and borrows, and multiplication by partial products.

Difficulty sets the number of digits; the reference solution works one column (or one partial
product) per line, the way a student is taught to."""

from __future__ import annotations

import random

from synthloop.skills.answers import score_number
from synthloop.skills.base import Skill, digits_of

PLACES = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands", "millions")


def make_addition(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    n_digits = difficulty + 1
    a, b = digits_of(rng, n_digits), digits_of(rng, rng.randint(max(1, n_digits - 1), n_digits))
    steps, carry = [], 0
    for place in range(n_digits):
        da, db = a // 10**place % 10, b // 10**place % 10
        total = da + db + carry
        carried = f" + {carry}" if carry else ""
        note = f", write {total % 10} carry 1" if total >= 10 else f", write {total}"
        steps.append(f"{PLACES[place]}: {da} + {db}{carried} = {total}{note}")
        carry = total // 10
    if carry:
        steps.append(f"{PLACES[n_digits]}: write the carried 1")
    return f"What is {a} + {b}?", steps, str(a + b)


def make_subtraction(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    n_digits = difficulty + 1
    a, b = sorted((digits_of(rng, n_digits), digits_of(rng, rng.randint(max(1, n_digits - 1), n_digits))))[::-1]
    steps, borrow = [], 0
    for place in range(n_digits):
        da, db = a // 10**place % 10 - borrow, b // 10**place % 10
        lent = f"{da + borrow} - 1 = {da}, " if borrow else ""
        if da < db:
            steps.append(f"{PLACES[place]}: {lent}{da} < {db} so borrow, {da + 10} - {db} = {da + 10 - db}")
            borrow = 1
        else:
            steps.append(f"{PLACES[place]}: {lent}{da} - {db} = {da - db}")
            borrow = 0
    return f"What is {a} - {b}?", steps, str(a - b)


MULTIPLICATION_SHAPES = {1: (2, 1), 2: (3, 1), 3: (2, 2), 4: (3, 2), 5: (3, 3)}


def make_multiplication(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    a_digits, b_digits = MULTIPLICATION_SHAPES[difficulty]
    a, b = digits_of(rng, a_digits), rng.randint(2, 9) if b_digits == 1 else digits_of(rng, b_digits)
    # Split the single-digit factor's partner by place; otherwise split the second factor.
    split, whole, n_places = (a, b, a_digits) if b_digits == 1 else (b, a, b_digits)
    steps, partials = [], []
    for place in range(n_places):
        piece = split // 10**place % 10 * 10**place
        part = whole * piece
        steps.append(f"{piece} * {whole} = {part}" if split == a else f"{whole} * {piece} = {part}")
        partials.append(part)
    if len(partials) > 1:
        steps.append(f"{' + '.join(map(str, partials))} = {a * b}")
    return f"What is {a} * {b}?", steps, str(a * b)


ADDITION = Skill("addition", "multi-digit addition with carries, column by column", make_addition, score_number)
SUBTRACTION = Skill(
    "subtraction", "multi-digit subtraction with borrows, column by column", make_subtraction, score_number
)
MULTIPLICATION = Skill("multiplication", "multiplication by partial products", make_multiplication, score_number)
