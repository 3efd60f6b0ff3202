"""Measured trust in a scorer: how often it is wrong on replies whose correctness is known.

A labelled row has `question`, `answer` (the reference), `output` (a model's reply), `label`
(`correct: true/false` or keep/drop, read as the stage audit reads them) and optionally `choices`,
`tests` and `category`. The scorer "flags" a reply when it scores it below 1 (marks it wrong); a row
labelled incorrect should be flagged. So a false positive is a right reply marked wrong (a capable
student failed), a false negative a wrong reply passed. The figures are the stage audit's
(`curation/audit.py`): TP/FP/FN/TN, precision, recall, agreement, and the rows it got wrong.

`embedded_scorer_sample` labels replies for free from the skills: right answers written the ways
models write them (`#### X`, "The answer is X.", `\\boxed{X}`, `**X**`, a bare `X`, `12.0` for 12),
wrong answers in the same markings, hedges ("X or W") and negations ("The answer is not X")."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synthloop.config import RecipeError, ScorerConfig, describe, first_error, load_recipe, read_yaml_file
from synthloop.curation.audit import StageAudit, label_value, rewritten
from synthloop.registry import SCORERS, SKILLS
from synthloop.scoring.base import Scorer, score_by_category
from synthloop.scoring.item import Score, TaskItem
from synthloop.sources.dataset import has_category, task_item
from synthloop.storage.input_files import OVERSIZE, InputFileError, read_rows

EMBEDDED = ("exact", "numeric", "math", "choice")  # the scorers the skills' references suit
RIGHT_MARKINGS = ("#### {}", "The answer is {}.", "Final answer: {}", "\\boxed{{{}}}", "**{}**", "{}")
WRONG_MARKINGS = ("#### {}", "The answer is {}.", "{}")


@dataclass
class ScorerRow:
    item: TaskItem
    output: str
    label: str  # keep: the output is right; drop: it is wrong
    where: str = ""


def read_scorer_sample(path: str | Path) -> list[ScorerRow]:
    rows = []
    for row, where in read_rows(path, "labelled sample", keep_oversize=True):
        if OVERSIZE in row:
            raise InputFileError(f"{where}: {row[OVERSIZE]}")
        output = row.get("output")
        if not isinstance(output, str):
            raise InputFileError(f"{where}: 'output' (the model's reply, text) is missing; a scorer audit row needs it")
        label = row.get("label", row.get("correct"))
        if label is None:
            raise InputFileError(f"{where}: no 'label' (or 'correct'): say whether the output is right")
        item = task_item(row, where, one_category=not has_category(row))
        rows.append(ScorerRow(item, output, label_value(label, where), where))
    return rows


def check_references(scorer: Scorer, rows: list[ScorerRow]) -> None:
    for row in rows:
        problem = scorer.check_reference(row.item)
        if problem:
            raise InputFileError(f"{row.where}: {problem}")


def audit_scorer(scorer: Scorer, rows: list[ScorerRow]) -> StageAudit:
    scores = score_rows(scorer, rows)
    result = StageAudit(f"scorer {scorer.name}", len(rows), 0, len(rows))
    for row, score in zip(rows, scores, strict=True):
        marked_wrong = score.value < 1.0
        result.flagged += marked_wrong
        shown = {
            "id": row.item.id,
            "question": row.item.question[:200],
            "answer": row.output[-200:],
            "reference": row.item.answer[:200],
            "extracted": score.extracted,
            "reason": None,
            "detail": score.detail,
        }
        if marked_wrong and row.label == "drop":
            result.tp += 1
        elif marked_wrong:
            result.fp += 1
            result.false_positives.append({**shown, "reason": "scored 0"})
        elif row.label == "drop":
            result.fn += 1
            result.false_negatives.append(shown)
        else:
            result.tn += 1
    if rows:
        result.precision = result.tp / (result.tp + result.fp) if result.tp + result.fp else None
        result.recall = result.tp / (result.tp + result.fn) if result.tp + result.fn else None
        result.agreement = (result.tp + result.tn) / len(rows)
    return result


def score_rows(scorer: Scorer, rows: list[ScorerRow]) -> list[Score]:
    """As a task source scores: a batch per category; an audit of a judge that did not answer is none."""
    return score_by_category([row.output for row in rows], [row.item for row in rows], lambda _: scorer)


def scorer_config(name: str, recipe: str | Path | None) -> ScorerConfig:
    """The settings of scorer `name`: from a file holding only `scorer: {...}`, or a recipe's task scorer
    (or a category's) of that name, or for a judge the recipe's `curation.judge`; else the defaults."""
    SCORERS.check(name)
    if recipe is None:
        if name == "judge":
            raise RecipeError(
                "--scorer judge needs a judge model: --recipe FILE with scorer: {name: judge, judge: {teacher: "
                "{backend: openai, base_url: ..., model: ...}}}"
            )
        return ScorerConfig(name=name)
    data = read_yaml_file(Path(recipe), "recipe")
    if isinstance(data, dict) and set(data) == {"scorer"}:
        value = {"name": data["scorer"]} if isinstance(data["scorer"], str) else data["scorer"]
        try:
            config = ScorerConfig.model_validate(value)
        except ValidationError as err:
            raise RecipeError(f"{recipe}: scorer.{describe(first_error(err), ScorerConfig)}") from None
        if config.name != name:
            raise RecipeError(f"{recipe}: its scorer is {config.name}, not {name} (--scorer)")
        return config
    task, curation = (loaded := load_recipe(recipe)).task, loaded.curation
    if task.type == "dataset":
        for config in (task.scorer, *(spec.scorer for spec in task.categories.values() if spec.scorer)):
            if config.name == name:
                return config
    if name == "judge" and curation.judge is not None:
        return ScorerConfig(name="judge", judge=curation.judge.model_copy(update={"mode": "pointwise"}))
    return scorer_config(name, None)


def embedded_scorer_sample(name: str, rows_per_skill: int = 20, seed: int = 0) -> list[ScorerRow]:
    """Labelled replies to the skills' problems, for scorer `name` (one of `EMBEDDED`); for numeric and
    math only the skills whose answers are numbers."""
    from synthloop.scoring.values import parse_quantity
    from synthloop.teachers.oracle import corrupt

    if name not in EMBEDDED:
        raise InputFileError(
            f"--embedded builds replies for the {', '.join(EMBEDDED)} scorers; give a labelled file for {name}"
        )
    rng = random.Random(seed)
    rows: list[ScorerRow] = []
    for skill_name in SKILLS.names():
        skill = SKILLS.get(skill_name)
        for i in range(rows_per_skill):
            problem = skill.generate(seed, i, 1 + i % 5)
            answer = problem.answer
            if name in ("numeric", "math") and (parse_quantity(answer) is None or "," in answer):
                continue
            wrong = corrupt(answer, rng)
            if wrong == answer:
                continue
            item, right, wrongs = embedded_item(name, problem, answer, wrong, rng)
            steps = "\n".join(problem.steps)
            replies = [(f"{steps}\n{m.format(r)}", "keep") for m in RIGHT_MARKINGS for r in right]
            replies += [(f"{steps}\n{m.format(w)}", "drop") for m in WRONG_MARKINGS for w in wrongs]
            replies += [
                (f"{steps}\nThe answer is {right[0]} or {wrongs[0]}.", "drop"),
                (f"{steps}\nThe answer is not {right[0]}.", "drop"),
                (f"{steps}\nI am not sure.", "drop"),
            ]
            rows += [ScorerRow(item, output, label, f"{skill_name} #{i}") for output, label in replies]
    return rows


def embedded_item(name: str, problem: Any, answer: str, wrong: str, rng: random.Random) -> tuple[Any, ...]:
    """The item, its right answers written several ways, and its wrong ones."""
    base = {"id": f"{problem.skill}/{problem.index}", "question": problem.question, "category": problem.skill}
    if name != "choice":
        right = list(dict.fromkeys([answer, rewritten(answer)]))
        return TaskItem(answer=answer, **base), right, [wrong]
    from synthloop.teachers.oracle import corrupt

    options = list(dict.fromkeys([answer, wrong, corrupt(wrong, rng), corrupt(answer, rng)]))
    rng.shuffle(options)
    letter, wrong_letter = "ABCD"[options.index(answer)], "ABCD"[options.index(wrong)]
    item = TaskItem(answer=letter, choices=tuple(options), **base)
    return item, [letter, f"({letter})", f"{letter}) {answer}", answer], [wrong_letter, f"{wrong_letter} and {letter}"]
