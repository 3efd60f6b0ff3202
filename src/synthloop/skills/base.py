"""What a skill is: a pure generator of verifiable problems and the scorer that sits beside it."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

MIN_DIFFICULTY, MAX_DIFFICULTY = 1, 5
ANSWER_MARKER = "####"


@dataclass(frozen=True)
class Problem:
    """One generated item: the question, a step-by-step reference solution and the final answer."""

    skill: str
    difficulty: int
    seed: int
    index: int
    question: str
    steps: tuple[str, ...]
    answer: str

    @property
    def solution(self) -> str:
        """The reference chain of thought, ending with the answer behind the `####` marker."""
        return "\n".join((*self.steps, f"{ANSWER_MARKER} {self.answer}"))


@dataclass(frozen=True)
class Skill:
    """A registry entry: `generate(seed, idx, difficulty)` is pure; `score(response, answer)` is in [0, 1]."""

    name: str
    description: str
    make: Callable[[random.Random, int], tuple[str, list[str], str]]
    score: Callable[[str, str], float]

    def generate(self, seed: int, idx: int, difficulty: int) -> Problem:
        check_difficulty(difficulty)
        question, steps, answer = self.make(item_rng(self.name, seed, idx, difficulty), difficulty)
        return Problem(self.name, difficulty, seed, idx, question, tuple(steps), answer)


def check_difficulty(difficulty: int) -> None:
    if not (isinstance(difficulty, int) and MIN_DIFFICULTY <= difficulty <= MAX_DIFFICULTY):
        raise ValueError(f"difficulty must be an integer from {MIN_DIFFICULTY} to {MAX_DIFFICULTY}, got {difficulty!r}")


def item_rng(skill: str, seed: int, idx: int, difficulty: int) -> random.Random:
    """A generator private to one item. String seeds hash with SHA-512, so they are stable across
    processes and never collide the way `Random(seed + idx)` does (seed 0 idx 1 == seed 1 idx 0)."""
    return random.Random(f"{skill}/{seed}/{idx}/{difficulty}")


def digits_of(rng: random.Random, n_digits: int) -> int:
    """A random integer with exactly `n_digits` digits."""
    return rng.randint(10 ** (n_digits - 1), 10**n_digits - 1)
