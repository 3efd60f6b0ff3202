"""Math answers checked by symbolic equivalence with `math-verify` (LaTeX or plain expressions, sympy
underneath): "1/2", "0.5" and "\\frac{1}{2}" agree; "x^2+2x+1" and "(x+1)^2" agree. An answer or reference
that cannot be parsed gives no verdict (None): the caller abstains rather than guessing.

Plain numbers are compared exactly first (the same text, or equal as fractions: "0.5" and "1/2"; two
different integers): math-verify's LaTeX parser costs about a millisecond a row, most of a curation's
time at scale, and agrees on these. Anything else, unequal decimals included (math-verify compares
those with a tolerance), goes to math-verify."""

from __future__ import annotations

import re
from fractions import Fraction

PLAIN = re.compile(r"[+-]?\d+(?:\.\d+)?|[+-]?\d+/[1-9]\d*")  # 12, -3, 0.75, 3/4: not 1e3, 1,000 or x


def plain_number(text: str) -> Fraction | None:
    text = text.strip()
    return Fraction(text) if PLAIN.fullmatch(text) else None


def plainly_equal(answer: str, reference: str) -> bool | None:
    """True or False where the plain-number fast path can tell, None where math-verify must."""
    if " ".join(answer.split()) == " ".join(reference.split()) and answer.strip():
        return True
    given, gold = plain_number(answer), plain_number(reference)
    if given is None or gold is None:
        return None
    if given == gold:
        return True
    both_integers = (
        given.denominator == 1 and gold.denominator == 1 and not any(c in answer + reference for c in "./eE")
    )
    return False if both_integers else None


def symbolically_equal(answer: str, reference: str) -> bool | None:
    from math_verify import parse, verify

    fast = plainly_equal(answer, reference)
    if fast is not None:
        return fast
    try:
        gold, given = parse(_as_math(reference)), parse(_as_math(answer))
        if not gold or not given:
            return None
        return bool(verify(gold, given))
    except Exception:  # math-verify and sympy raise many kinds on odd input; that is "cannot tell"
        return None


def _as_math(text: str) -> str:
    text = text.strip()
    return text if "$" in text else f"${text}$"
