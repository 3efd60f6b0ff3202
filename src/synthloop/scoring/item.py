"""One item of a task: a question with its reference answer, as a task source hands it out (a built-in
skill's problem, or a row of a user's train or eval file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskItem:
    id: str  # stable: the row's content id (a file row) or skill/seed/index (a built-in problem)
    question: str
    answer: str  # the reference: a value, a choice, a regular expression (regex scorer), ...
    category: str
    reasoning: str = ""  # a reference solution, when the data has one
    tests: str | None = None  # code: Python tests the answer must pass
    choices: tuple[str, ...] | None = None  # choice: the options, in order (A, B, C, ...)
    difficulty: int | None = None


@dataclass(frozen=True)
class Score:
    value: float  # 0..1
    extracted: str | None  # the final answer found in the output (None: none stated, or a hedge)
    detail: str | None = None  # why, for a reader: "hedged between 966 and 12", a failing test, the judge's reason
    unscored: bool = False  # no grade at all (the judge's call failed, its reply was unusable): not the student's


MAX_UNSCORED_SHARE = 0.1  # of a batch's answers that could not be graded before scoring stops


class ScoringFailed(RuntimeError):
    """Too many answers could not be graded (a judge down or talking nonsense): scores of 0 would read as a
    weak student and steer the next round. The CLI prints it as a one-line user error."""


def refuse_unscored(scores: list[Score]) -> list[Score]:
    """`scores`, unless more than a tenth of them are unscored: then `ScoringFailed`, naming the first reason."""
    unscored = [score for score in scores if score.unscored]
    if len(unscored) > MAX_UNSCORED_SHARE * len(scores):
        raise ScoringFailed(
            f"the scorer could not grade {len(unscored)} of {len(scores)} answers ({unscored[0].detail}); zeros "
            "would read as a weak student. Fix it (task.scorer.judge) and rerun with --resume: the grades received "
            "are cached, and only the missing ones are asked again"
        )
    return scores
