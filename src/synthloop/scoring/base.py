"""What every scorer is, and the shared path of the answer-comparing ones: find the final answer in the
reply (a hedge or a negation scores 0 with the reason), then compare it with the item's reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from synthloop.scoring.item import Score, TaskItem, refuse_unscored
from synthloop.skills.final_answer import find_final_answer


class Scorer(Protocol):
    name: str

    def score(self, outputs: Sequence[str], items: Sequence[TaskItem]) -> list[Score]:
        """One score per (output, item), in order; a batch is one category's items."""
        ...

    def check_reference(self, item: TaskItem) -> str | None:
        """Why this scorer cannot use the item's reference (said with the file and line at load), or None."""
        ...


def score_by_category(
    outputs: Sequence[str], items: Sequence[TaskItem], scorer_of: Callable[[str], Scorer]
) -> list[Score]:
    """Scores in order, each category's items scored in one batch (code and judge scorers run a batch
    together); more than a tenth unscored stops here (`refuse_unscored`): a judge down is not a weak student."""
    scores: list[Score | None] = [None] * len(items)
    by_category: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_category.setdefault(item.category, []).append(index)
    for category, indices in by_category.items():
        got = scorer_of(category).score([outputs[i] for i in indices], [items[i] for i in indices])
        for i, score in zip(indices, got, strict=True):
            scores[i] = score
    return refuse_unscored(scores)  # type: ignore[arg-type]  # every index was filled


class AnswerScorer:
    """A scorer that compares the stated final answer with the reference; subclasses write `compare`."""

    name = ""

    def score(self, outputs: Sequence[str], items: Sequence[TaskItem]) -> list[Score]:
        return [self.score_one(output, item) for output, item in zip(outputs, items, strict=True)]

    def score_one(self, output: str, item: TaskItem) -> Score:
        found = find_final_answer(output, self.exempt(item))
        if found.value is None:
            return Score(0.0, None, found.problem)
        return self.compare(found.value, item)

    def exempt(self, item: TaskItem) -> tuple[str, ...]:
        """Answers taken as written even when they read like a hedge or a negation ("not applicable")."""
        return (item.answer,)

    def compare(self, answer: str, item: TaskItem) -> Score:
        raise NotImplementedError

    def check_reference(self, item: TaskItem) -> str | None:
        return None if item.answer.strip() else "an empty reference answer"


def verdict(equal: bool, answer: str, item: TaskItem, why: str | None = None) -> Score:
    """1 or 0 for `answer`, saying what it was compared with when it is wrong."""
    if equal:
        return Score(1.0, answer)
    return Score(0.0, answer, why or f"{shorten(answer)!r} is not the reference {shorten(item.answer)!r}")


def shorten(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
