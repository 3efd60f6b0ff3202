"""The scorers a task names (`task.scorer`, per category `categories.<name>.scorer`).

Built so far: `exact`, the normalised final answer equal to the reference (case, whitespace and a
trailing full stop ignored; two numbers equal when their values are). The other scorers the recipe
accepts (numeric, math, choice, regex, code, judge) are refused with one line before anything is
written, never silently replaced by `exact`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synthloop.config import RecipeError, ScorerConfig
from synthloop.scoring.item import Score, TaskItem
from synthloop.skills.answers import extract_final_answer, normalize_text, parse_number


class ExactScorer:
    name = "exact"

    def __init__(self, case_sensitive: bool = False):
        self.case_sensitive = case_sensitive

    def key(self, text: str) -> str:
        number = parse_number(text)
        if number is not None:
            return f"#{number}"
        return normalize_text(text) if not self.case_sensitive else " ".join(text.strip().rstrip(".").split())

    def score(self, outputs: Sequence[str], items: Sequence[TaskItem]) -> list[Score]:
        scores = []
        for output, item in zip(outputs, items, strict=True):
            answer = extract_final_answer(output)
            equal = answer is not None and self.key(answer) == self.key(item.answer)
            scores.append(Score(float(equal), answer, None if answer is not None else "no final answer stated"))
        return scores

    def check_reference(self, item: TaskItem) -> str | None:
        return None if item.answer.strip() else "an empty reference answer"


def make_scorer(config: ScorerConfig, context: Any = None) -> ExactScorer:
    if config.name != "exact":
        raise RecipeError(
            f"scorer {config.name}: not available in this version yet; use scorer: exact (the other scorers are "
            "being built)"
        )
    return ExactScorer(config.case_sensitive)
