"""`exact` and `numeric`: the final answer compared with the reference as text or as a number.

exact: case, whitespace and a closing full stop ignored (case kept with `case_sensitive`); two numbers
are equal when their values are (`0.5 == 1/2 == 0.50`, `1,000 == 1000`, `$5 == 5`).

numeric: |answer - reference| <= tolerance * max(1, |reference|); with no tolerance set, an integer
reference within 1e-6 (absolute) and any other within 1e-6 relative. A number may be written `1,234`,
`-3`, `0.75`, `3/4`, `1 1/2`, `1.5e3`, `$5` (a currency sign is dropped), `12 apples` (a trailing unit:
when both sides name one, the units must be the same word), or `50%`: a percent equals its number
and its number over 100, so `50%` matches a reference of `50` or `0.5` (and `0.5` matches `50%`)."""

from __future__ import annotations

import re
from fractions import Fraction

from synthloop.config import ScorerConfig
from synthloop.scoring.base import AnswerScorer, verdict
from synthloop.scoring.context import ScoringContext
from synthloop.scoring.item import Score, TaskItem
from synthloop.skills.answers import normalize_text, parse_number


class ExactScorer(AnswerScorer):
    name = "exact"

    def __init__(self, case_sensitive: bool = False):
        self.case_sensitive = case_sensitive

    @classmethod
    def from_config(cls, config: ScorerConfig, context: ScoringContext) -> ExactScorer:
        return cls(config.case_sensitive)

    def key(self, text: str) -> str:
        number = parse_number(text)
        if number is not None:
            return f"#{number}"
        return normalize_text(text) if not self.case_sensitive else " ".join(text.strip().rstrip(".").split())

    def compare(self, answer: str, item: TaskItem) -> Score:
        return verdict(self.key(answer) == self.key(item.answer), answer, item)


SCIENTIFIC = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:[eE]|(?:×|x|\*|\\times|\\cdot)\s*10\^)\{?([-+]?\d+)\}?")
MAX_EXPONENT = 1000
WITH_UNIT = re.compile(r"(.*?\d)\s*([A-Za-zµ°][A-Za-z²³]*(?:\s[A-Za-z]+)?)")
CURRENCY = "$€£¥"


def parse_quantity(text: str) -> tuple[list[Fraction], str | None] | None:
    """The values a number may mean (one, or two for a percent) and its unit; None if it is not a number."""
    cleaned = text.strip().replace("−", "-").replace("\u2009", "").replace("\\,", "").replace("\\%", "%")
    cleaned = cleaned.rstrip(".").strip()
    sign = cleaned[0] if cleaned and cleaned[0] in "+-" else ""
    cleaned = sign + cleaned[len(sign) :].lstrip(CURRENCY).strip()
    percent = cleaned.endswith("%")
    cleaned = cleaned.rstrip("%").strip()
    unit = None
    value = number(cleaned)
    if value is None and (with_unit := WITH_UNIT.fullmatch(cleaned)):
        value, unit = number(with_unit.group(1)), unit_key(with_unit.group(2))
    if value is None:
        return None
    return ([value, value / 100] if percent else [value]), unit


def number(text: str) -> Fraction | None:
    """`parse_number`, and scientific notation: `1.5e3`, `1.5 x 10^3`, `1.5 \\times 10^{3}`."""
    value = parse_number(text)
    if value is not None:
        return value
    match = SCIENTIFIC.fullmatch(text.strip())
    if match is None or abs(int(match.group(2))) > MAX_EXPONENT:
        return None
    return Fraction(match.group(1)) * Fraction(10) ** int(match.group(2))


def unit_key(unit: str) -> str:
    word = unit.casefold()
    return word[:-1] if len(word) > 2 and word.endswith("s") else word


class NumericScorer(AnswerScorer):
    name = "numeric"

    DEFAULT_TOLERANCE = 1e-6  # for a reference that is not an integer, when the recipe sets none

    def __init__(self, tolerance: float | None = None):
        self.tolerance = tolerance

    @classmethod
    def from_config(cls, config: ScorerConfig, context: ScoringContext) -> NumericScorer:
        return cls(config.tolerance)

    def compare(self, answer: str, item: TaskItem) -> Score:
        got, want = parse_quantity(answer), parse_quantity(item.answer)
        if got is None:
            return Score(0.0, answer, f"{answer[:80]!r} is not a number")
        if want is None:  # check_reference refused it at load; a hand-made item may still reach here
            return Score(0.0, answer, f"the reference {item.answer[:80]!r} is not a number")
        (values, unit), (references, want_unit) = got, want
        if unit and want_unit and unit != want_unit:
            return Score(0.0, answer, f"unit {unit!r} is not the reference's {want_unit!r}")
        close = any(self.close(v, r) for v in values for r in references)
        return verdict(close, answer, item, f"{answer[:80]!r} is not within tolerance of {item.answer[:80]!r}")

    def close(self, value: Fraction, reference: Fraction) -> bool:
        """Within the tolerance; with none set, within 1e-6 of an integer reference (float noise such as
        1234.0000001 passes; a relative 1e-6 would let 1,486,671 pass for 1,486,672) and 1e-6 relative of
        any other."""
        if value == reference:
            return True
        difference = abs(value - reference)  # exact: a float of 1e400 would overflow
        # Fraction of the decimal text: Fraction(0.3) is 0.29999..., which would fail an answer exactly at it.
        if self.tolerance is None and reference.denominator == 1:
            return difference <= Fraction(str(self.DEFAULT_TOLERANCE))
        tolerance = Fraction(str(self.DEFAULT_TOLERANCE if self.tolerance is None else self.tolerance))
        return difference <= tolerance * max(Fraction(1), abs(reference))

    def check_reference(self, item: TaskItem) -> str | None:
        if parse_quantity(item.answer) is None:
            return f"the reference {item.answer[:80]!r} is not a number (the numeric scorer needs one)"
        return None
