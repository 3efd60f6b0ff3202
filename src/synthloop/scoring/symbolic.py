"""`math`: the final answer and the reference are equal as mathematics, checked with math-verify (sympy
underneath): `1/2 == 0.5 == \\frac{1}{2}`, `(x+1)^2 == x^2+2x+1`, `\\sqrt{8} == 2\\sqrt{2}`. Plain numbers
are compared exactly first (`1,234 == 1234`, which math-verify would read as a pair). An answer
math-verify cannot read scores 0, saying so; a reference it cannot read is refused at load."""

from __future__ import annotations

import threading
from typing import Any

from synthloop.config import ScorerConfig
from synthloop.scoring.base import AnswerScorer, verdict
from synthloop.scoring.context import ScoringContext
from synthloop.scoring.item import Score, TaskItem
from synthloop.skills.answers import parse_number

TIMEOUT_S = 5  # per parse and per comparison; math-verify's timer is a signal, so only in the main thread
MAX_CHARS = 2000  # longer answers are not handed to sympy


def parsed(text: str) -> list[Any]:
    """math-verify's reading of `text`: [] when it finds no mathematics in it (its fallback of the bare
    string alone is not a reading)."""
    from math_verify import parse

    text = text.strip()
    try:
        found = parse(text if "$" in text else f"${text}$", parsing_timeout=timeout())
    except Exception:  # math-verify and sympy raise many kinds on odd input: that is "cannot read it"
        return []
    return found if any(not isinstance(part, str) for part in found) else []


def timeout() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


class MathScorer(AnswerScorer):
    name = "math"

    @classmethod
    def from_config(cls, config: ScorerConfig, context: ScoringContext) -> MathScorer:
        return cls()

    def compare(self, answer: str, item: TaskItem) -> Score:
        got, want = parse_number(answer), parse_number(item.answer)
        if got is not None and want is not None:
            return verdict(got == want, answer, item)
        if len(answer) > MAX_CHARS:
            return Score(0.0, answer, f"an answer over {MAX_CHARS} characters is not compared")
        gold, given = parsed(item.answer), parsed(answer)
        if not given:
            return Score(0.0, answer, f"math-verify cannot read {answer[:80]!r} as mathematics")
        if not gold:
            return Score(0.0, answer, f"math-verify cannot read the reference {item.answer[:80]!r}")
        from math_verify import verify

        try:
            equal = bool(verify(gold, given, timeout_seconds=timeout()))
        except Exception:
            return Score(0.0, answer, "math-verify could not compare the answer with the reference")
        return verdict(equal, answer, item)

    def check_reference(self, item: TaskItem) -> str | None:
        if not item.answer.strip():
            return "an empty reference answer"
        if parse_number(item.answer) is None and not parsed(item.answer):
            return f"math-verify cannot read the reference {item.answer[:80]!r} as mathematics (the math scorer)"
        return None
