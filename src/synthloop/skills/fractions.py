"""Fraction arithmetic: common denominators, products and quotients, answers in lowest terms.

Scoring compares values, so 3/4, 6/8 and 0.75 are all accepted for a reference of 3/4."""

from __future__ import annotations

import random
from fractions import Fraction
from math import gcd, lcm

from synthloop.skills.answers import score_number
from synthloop.skills.base import Skill


def show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def proper(rng: random.Random, max_den: int) -> Fraction:
    den = rng.randint(2, max_den)
    return Fraction(rng.randint(1, den - 1), den)


def add_or_subtract(a: Fraction, b: Fraction, op: str) -> list[str]:
    common = lcm(a.denominator, b.denominator)
    na, nb = a.numerator * common // a.denominator, b.numerator * common // b.denominator
    raw = na + nb if op == "+" else na - nb
    steps = []
    if common != a.denominator or common != b.denominator:
        steps.append(f"common denominator {common}: {na}/{common} {op} {nb}/{common}")
    steps.append(f"{na} {op} {nb} = {raw}, so {raw}/{common}")
    if Fraction(raw, common).denominator != common:
        steps.append(f"simplify {raw}/{common} = {show(Fraction(raw, common))}")
    return steps


def make_fractions(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    if difficulty == 1:  # same denominator
        den = rng.randint(3, 20)
        a, b = (Fraction(rng.choice([n for n in range(1, den) if gcd(n, den) == 1]), den) for _ in "ab")
        op = "+"
    else:
        a, b = proper(rng, 4 + 2 * difficulty), proper(rng, 4 + 2 * difficulty)
        op = rng.choice({2: "+-", 3: "+-*", 4: "+-*/", 5: "*/"}[difficulty])
    if op == "-" and a < b:
        a, b = b, a
    question = f"What is {show(a)} {op} {show(b)}? Give the answer in lowest terms."
    if op in "+-":
        steps = add_or_subtract(a, b, op)
        value = a + b if op == "+" else a - b
    else:
        if op == "/":
            steps = [f"dividing by {show(b)} is multiplying by {show(1 / b)}"]
            b, op = 1 / b, "*"
        else:
            steps = []
        num, den = a.numerator * b.numerator, a.denominator * b.denominator
        steps.append(f"{a.numerator} * {b.numerator} = {num}, {a.denominator} * {b.denominator} = {den}")
        value = Fraction(num, den)
        if value.denominator != den:
            steps.append(f"simplify {num}/{den} = {show(value)}")
    return question, steps, show(value)


FRACTIONS = Skill("fractions", "add, subtract, multiply and divide fractions", make_fractions, score_number)
