"""Unit conversion within one dimension (length, mass, time, volume).

Scoring accepts the number alone (in the unit asked for) or a number with any unit of the same
dimension: for "3 km in m" the answers `3000`, `3000 m`, `3000 meters` and `3 km` all score 1."""

from __future__ import annotations

import random
import re
from fractions import Fraction

from synthloop.skills.answers import extract_final_answer, parse_number
from synthloop.skills.base import Skill

# unit -> (dimension, size in the dimension's base unit, aliases)
UNITS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "mm": ("length", 1, ("millimeter", "millimeters", "millimetre", "millimetres")),
    "cm": ("length", 10, ("centimeter", "centimeters", "centimetre", "centimetres")),
    "m": ("length", 1000, ("meter", "meters", "metre", "metres")),
    "km": ("length", 1_000_000, ("kilometer", "kilometers", "kilometre", "kilometres")),
    "g": ("mass", 1, ("gram", "grams")),
    "kg": ("mass", 1000, ("kilogram", "kilograms", "kilo", "kilos")),
    "s": ("time", 1, ("sec", "second", "seconds")),
    "min": ("time", 60, ("minute", "minutes", "mins")),
    "h": ("time", 3600, ("hr", "hour", "hours")),
    "mL": ("volume", 1, ("ml", "milliliter", "milliliters", "millilitre", "millilitres")),
    "L": ("volume", 1000, ("l", "liter", "liters", "litre", "litres")),
}
ALIASES = {alias: unit for unit, (_, _, aliases) in UNITS.items() for alias in (unit, *aliases)}
PAIRS = [(a, b) for a in UNITS for b in UNITS if a != b and UNITS[a][0] == UNITS[b][0]]


def factor(src: str, dst: str) -> Fraction:
    return Fraction(UNITS[src][1], UNITS[dst][1])


def show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value)).rstrip("0").rstrip(".")


def make_unit_conversion(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    direct = [(a, b) for a, b in PAIRS if factor(a, b) in (10, 60, 100, 1000, 3600, Fraction(1, 10))]
    while True:
        src, dst = rng.choice(PAIRS if difficulty >= 3 else direct)
        f = factor(src, dst)
        if (difficulty == 1 and f < 1) or (difficulty == 2 and f >= 1):
            continue  # level 1 goes to a smaller unit (multiply), level 2 to a larger one (divide)
        amount = Fraction(rng.randint(1, 99))
        if difficulty >= 4:
            amount += Fraction(rng.choice([1, 2, 5]), 10)
        if f < 1:  # choose the amount so the result is exact and short
            amount = amount / f * rng.choice([1, 1, 2, 5]) if difficulty != 5 else amount / f / 10
        result = amount * f
        if result.denominator in (1, 2, 5, 10) and 0 < result < 10**7:
            break
    op = f"* {show(f)}" if f >= 1 else f"/ {show(1 / f)}"
    steps = [
        f"1 {src} = {show(f)} {dst}" if f >= 1 else f"1 {dst} = {show(1 / f)} {src}",
        f"{show(amount)} {op} = {show(result)}",
    ]
    return f"Convert {show(amount)} {src} to {dst}.", steps, f"{show(result)} {dst}"


def parse_quantity(text: str) -> tuple[Fraction, str | None] | None:
    match = re.fullmatch(r"\s*([-+0-9.,/ ]*[0-9])\s*([A-Za-z]+)?\s*\.?\s*", text)
    if not match:
        return None
    value = parse_number(match.group(1))
    unit = match.group(2)
    if value is None or (unit is not None and unit not in ALIASES and unit.lower() not in ALIASES):
        return None
    return value, None if unit is None else ALIASES.get(unit, ALIASES.get(unit.lower()))


def score_quantity(response: str, reference: str) -> float:
    answer = extract_final_answer(response)
    got, want = parse_quantity(answer or ""), parse_quantity(reference)
    if got is None or want is None:
        return 0.0
    (value, unit), (want_value, want_unit) = got, want
    if unit is None or want_unit is None:
        return float(value == want_value)
    if UNITS[unit][0] != UNITS[want_unit][0]:
        return 0.0
    return float(value * factor(unit, want_unit) == want_value)


UNIT_CONVERSION = Skill(
    "unit_conversion", "convert lengths, masses, times and volumes", make_unit_conversion, score_quantity
)
