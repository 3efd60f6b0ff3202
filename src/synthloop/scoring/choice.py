"""`choice`: multiple choice over the item's `choices` (option A is the first).

An answer names one option by its letter (`B`, `(B)`, `B)`, `B.`, `Option B`, `Choice (b)`, `B) Paris`)
or by its text (`Paris`, case and spacing free). An answer naming two or more options (`A or B`,
`A and C`, `A, C`, `B) Paris` where Paris is option C) is a hedge and scores 0. The reference is a
letter or an option's text; an item without choices, or whose reference names none, is refused at load."""

from __future__ import annotations

import re
import string

from synthloop.config import ScorerConfig
from synthloop.scoring.base import AnswerScorer, verdict
from synthloop.scoring.context import ScoringContext
from synthloop.scoring.item import Score, TaskItem
from synthloop.skills.answers import normalize_text

LETTERS = string.ascii_uppercase
ONE = re.compile(r"(?:(?:option|choice)\s+)?\(?([A-Za-z])\)?(?:\s*[.):]\s*(.*))?", re.IGNORECASE)
SEVERAL = re.compile(
    r"(?:(?:options|choices)\s+)?\(?([A-Za-z])\)?(?:\s*(?:,|&|/|\band\b|\bor\b)\s*\(?[A-Za-z]\)?)+", re.IGNORECASE
)


def option_index(answer: str, choices: tuple[str, ...]) -> tuple[int | None, str | None]:
    """(the option `answer` names, None) or (None, why it names none or several)."""
    texts = [normalize_text(c) for c in choices]
    key = normalize_text(answer)
    if key in texts:
        return texts.index(key), None
    if SEVERAL.fullmatch(answer.strip()):
        named = sorted({c.upper() for c in re.findall(r"\b[A-Za-z]\b", re.sub(r"(?i)\b(and|or)\b", " ", answer))})
        return None, f"hedged between options {' and '.join(named)}"
    one = ONE.fullmatch(answer.strip())
    if one is None:
        return None, f"{answer[:80]!r} names no option (a letter A-{LETTERS[len(choices) - 1]} or an option's text)"
    letter, text = one.group(1).upper(), normalize_text(one.group(2) or "")
    index = LETTERS.find(letter)
    if index >= len(choices):
        return None, f"there is no option {letter} ({len(choices)} choices)"
    if text and text != texts[index]:
        if text in texts:
            return None, f"hedged between options {letter} and {LETTERS[texts.index(text)]} (letter and text disagree)"
        return None, f"option {letter} is {choices[index][:60]!r}, not {one.group(2)[:60]!r}"
    return index, None


class ChoiceScorer(AnswerScorer):
    name = "choice"

    @classmethod
    def from_config(cls, config: ScorerConfig, context: ScoringContext) -> ChoiceScorer:
        return cls()

    def exempt(self, item: TaskItem) -> tuple[str, ...]:
        return (item.answer, *(item.choices or ()))

    def compare(self, answer: str, item: TaskItem) -> Score:
        choices = item.choices or ()
        want, _ = option_index(item.answer, choices)
        got, problem = option_index(answer, choices)
        if got is None:
            return Score(0.0, None if problem and problem.startswith("hedged") else answer, problem)
        return verdict(got == want, LETTERS[got], item, f"option {LETTERS[got]}, not {LETTERS[want or 0]}")

    def check_reference(self, item: TaskItem) -> str | None:
        if not item.choices:
            return "the choice scorer needs 'choices' (a list of the options) on every row"
        index, _ = option_index(item.answer, item.choices)
        if index is None:
            letters = f"A-{LETTERS[len(item.choices) - 1]}"
            return f"the reference {item.answer[:80]!r} is neither a letter {letters} nor one of the choices"
        return None
