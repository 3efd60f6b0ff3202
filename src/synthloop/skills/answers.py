"""The equivalences the skills' scorers share, over the final answer a reply states (`final_answer.py`)."""

from __future__ import annotations

import re
from fractions import Fraction

from synthloop.skills.final_answer import extract_final_answer, normalize_text

_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)(/\d+)?$")


THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # "1,234": a comma before exactly three digits


def parse_number(text: str) -> Fraction | None:
    """An exact number from `42`, `-3`, `1,234`, `0.75`, `3/4`, `3 / 4`, `1 1/2`, `$5`; None if it is not one.
    Digits are never joined across a space or a misplaced comma: `9 66` and `96,6` are not 966."""
    stripped = THOUSANDS.sub("", text.strip().rstrip("."))
    mixed = re.fullmatch(r"([-+]?\d+)\s+(\d+)/(\d+)", stripped)
    if mixed:
        whole, num, den = (int(g) for g in mixed.groups())
        if den == 0:
            return None
        sign = -1 if whole < 0 else 1
        return whole + sign * Fraction(num, den)
    cleaned = re.sub(r"^([-+]?)\s*\$\s*", r"\1", stripped)  # "$5", "-$5", "$ 5"
    cleaned = re.sub(r"\s*/\s*", "/", cleaned)
    if not _NUMBER.match(cleaned):
        return None
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def parse_number_list(text: str) -> list[Fraction] | None:
    """`3, 5, 7` or `[3, 5, 7]` or `3 < 5 < 7` as exact numbers; None if any item is not a number."""
    body = " ".join(text.split()).strip("[]()").replace("<", ",").replace(";", ",")  # one space at most: linear
    items = [part for part in re.split(r",\s*|\s+(?=[-+]?\d)", body) if part.strip()]
    numbers = [parse_number(item) for item in items]
    if not numbers or any(n is None for n in numbers):
        return None
    return numbers  # type: ignore[return-value]


def score_by(parse, response: str, reference: str) -> float:
    """1.0 when the final answer in `response` parses and equals the parsed reference, else 0.0."""
    answer = extract_final_answer(response, (reference,))
    if answer is None:
        return 0.0
    got, want = parse(answer), parse(reference)
    return float(got is not None and got == want)


def score_number(response: str, reference: str) -> float:
    """Exact numeric equality: `0.75 == 3/4 == 6/8`, `1,000 == 1000`."""
    return score_by(parse_number, response, reference)


def score_number_list(response: str, reference: str) -> float:
    """The same numbers in the same order."""
    return score_by(parse_number_list, response, reference)


def score_text(response: str, reference: str) -> float:
    """Case- and whitespace-insensitive text equality (for yes/no, true/false and named answers)."""
    return score_by(normalize_text, response, reference)
