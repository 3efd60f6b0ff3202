"""Evaluate an expression by the order of operations, one reduction per line.

Level 1: two operations on small numbers; higher levels add operations, parentheses and exact
division. Every intermediate value is a non-negative integer, so no item needs fractions."""

from __future__ import annotations

import random

from synthloop.skills.answers import score_number
from synthloop.skills.base import Skill

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}
LEVELS = {1: (2, "+-*", False), 2: (3, "+-*", False), 3: (3, "+-*", True), 4: (4, "+-*/", True), 5: (5, "+-*/", True)}


def random_tokens(rng: random.Random, n_ops: int, ops: str, parens: bool) -> list[str]:
    tokens = [str(rng.randint(1, 9))]
    for _ in range(n_ops):
        tokens += [rng.choice(ops), str(rng.randint(1, 9))]
    if parens:  # wrap one run of two or more numbers, so the parentheses change something
        numbers = list(range(0, len(tokens), 2))
        spans = [(s, e) for s in numbers for e in numbers if s < e and (s, e) != (0, numbers[-1])]
        start, end = rng.choice(spans)
        tokens = [*tokens[:start], "(", *tokens[start : end + 1], ")", *tokens[end + 1 :]]
    return tokens


def reduce_once(tokens: list[str]) -> list[str] | None:
    """One step: inside the innermost parentheses, the first * or /, else the first + or -.
    None when the step would divide inexactly or go negative (the item is then redrawn)."""
    if "(" in tokens:
        open_at = max(i for i, t in enumerate(tokens) if t == "(")
        close_at = tokens.index(")", open_at)
        inner = reduce_once(tokens[open_at + 1 : close_at])
        if inner is None:
            return None
        if len(inner) == 1:  # the group is done: "( n )" -> "n"
            return tokens[:open_at] + inner + tokens[close_at + 1 :]
        return tokens[: open_at + 1] + inner + tokens[close_at:]
    ops_at = [i for i, t in enumerate(tokens) if t in "*/"] or [i for i, t in enumerate(tokens) if t in "+-"]
    i = ops_at[0]
    a, op, b = int(tokens[i - 1]), tokens[i], int(tokens[i + 1])
    if (op == "/" and (b == 0 or a % b)) or (op == "-" and a < b):
        return None
    return [*tokens[: i - 1], str(OPS[op](a, b)), *tokens[i + 2 :]]


def make_order_of_operations(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    n_ops, ops, parens = LEVELS[difficulty]
    while True:
        tokens = random_tokens(rng, n_ops, ops, parens)
        expression, lines = " ".join(tokens), []
        while tokens is not None and len(tokens) > 1:
            tokens = reduce_once(tokens)
            if tokens is not None:
                lines.append(" ".join(tokens))
        if tokens is not None:
            steps = [f"{expression} = {lines[0]}"] + [f"= {line}" for line in lines[1:]]
            return f"Evaluate {expression}", steps, tokens[0]


ORDER_OF_OPERATIONS = Skill(
    "order_of_operations",
    "evaluate + - * / expressions with parentheses by precedence",
    make_order_of_operations,
    score_number,
)
