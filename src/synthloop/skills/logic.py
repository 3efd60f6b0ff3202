"""Logic: evaluate boolean expressions innermost-first, and decide whether a chain of
"every A is a B" statements entails a conclusion."""

from __future__ import annotations

import itertools
import random

from synthloop.skills.answers import score_text
from synthloop.skills.base import Skill

WORDS = ("blicket", "dax", "wug", "fep", "toma", "zorb", "kiki", "bouba", "glorp", "snib", "vop", "mip")


def random_expression(rng: random.Random, n_ops: int) -> tuple[str, bool, list[str]]:
    """An expression with `n_ops` binary operators (each side may be negated), its value and the
    evaluation steps in the order a reader resolves them."""
    if n_ops == 0:
        value = rng.random() < 0.5
        if rng.random() < 0.3:
            return f"not {str(value).lower()}", not value, [f"not {str(value).lower()} = {str(not value).lower()}"]
        return str(value).lower(), value, []
    left_ops = rng.randint(0, n_ops - 1)
    left, lv, ls = random_expression(rng, left_ops)
    right, rv, rs = random_expression(rng, n_ops - 1 - left_ops)
    op = rng.choice(["and", "or"])
    value = (lv and rv) if op == "and" else (lv or rv)
    left_text = f"({left})" if " and " in left or " or " in left else left
    right_text = f"({right})" if " and " in right or " or " in right else right
    step = f"{str(lv).lower()} {op} {str(rv).lower()} = {str(value).lower()}"
    return f"{left_text} {op} {right_text}", value, [*ls, *rs, step]


def make_boolean(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    text, value, steps = random_expression(rng, difficulty)
    return f"Evaluate the boolean expression: {text}", steps or [f"{text} = {str(value).lower()}"], str(value).lower()


def make_syllogism(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    words = rng.sample(WORDS, difficulty + 3)
    chain = words[: difficulty + 2]  # every chain[i] is a chain[i+1]
    premises = [f"Every {a} is a {b}." for a, b in itertools.pairwise(chain)]
    premises.append(f"Every {words[-1]} is a {chain[rng.randrange(1, len(chain))]}.")  # a distractor
    rng.shuffle(premises)
    i, j = sorted(rng.sample(range(len(chain)), 2))
    forward = rng.random() < 0.5
    a, b = (chain[i], chain[j]) if forward else (chain[j], chain[i])
    question = " ".join(premises) + f" Does it follow that every {a} is a {b}? Answer yes or no."
    if forward:
        links = " -> ".join(chain[i : j + 1])
        return question, [f"chain: {links}", "so it follows"], "yes"
    return question, [f"the statements only lead from {b} up to {a}, never back", "so it does not follow"], "no"


def make_logic(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    return (make_boolean if rng.random() < 0.5 else make_syllogism)(rng, difficulty)


LOGIC = Skill("logic", "boolean expressions and syllogism chains", make_logic, score_text)
