"""Math answers checked by symbolic equivalence with `math-verify` (LaTeX or plain expressions, sympy
underneath): "1/2", "0.5" and "\\frac{1}{2}" agree; "x^2+2x+1" and "(x+1)^2" agree. An answer or reference
that cannot be parsed gives no verdict (None): the caller abstains rather than guessing."""

from __future__ import annotations


def symbolically_equal(answer: str, reference: str) -> bool | None:
    from math_verify import parse, verify

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
