"""The golden set: a user's human examples (JSONL or Parquet), or, for the embedded default,
reference items written by the skills from a seed stream of their own.

A user's row needs `question` and `answer`; `reasoning` and `skill` are optional. A bad file or row
raises `GoldenSetError` naming the file and line, before anything is trained on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthloop.records import Record
from synthloop.scoring.item import TaskItem
from synthloop.skills.base import Skill
from synthloop.storage.input_files import InputFileError, read_rows


class GoldenSetError(InputFileError):
    pass


def load_golden_file(path: str | Path, round_: int = 0) -> list[Record]:
    try:
        rows = read_rows(path, "golden set")
    except InputFileError as err:
        raise GoldenSetError(str(err)) from None
    return [golden_record(row, where, round_) for row, where in rows]


def golden_record(row: dict[str, Any], where: str, round_: int) -> Record:
    for key in ("question", "answer"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise GoldenSetError(f"{where}: missing or empty {key!r} (a golden row needs 'question' and 'answer')")
    reasoning = row.get("reasoning") or ""  # absent, or null in a Parquet column
    if not isinstance(reasoning, str):
        raise GoldenSetError(f"{where}: 'reasoning' must be text")
    return Record(
        kind="solution",
        skill=str(row.get("skill") or "golden"),
        question=row["question"],
        source="human",
        round=round_,
        reasoning=reasoning,
        answer=row["answer"],
        reference_answer=row["answer"],
    )


def embedded_golden(skills: dict[str, Skill], difficulties: dict[str, int], size: int, seed: int) -> list[Record]:
    """`size` reference items spread evenly over the skills, from the golden seed stream."""
    names = list(skills)
    records = []
    for i in range(size):
        name = names[i % len(names)]
        problem = skills[name].generate(seed, i // len(names), difficulties[name])
        records.append(
            Record(
                kind="solution",
                skill=name,
                question=problem.question,
                source="reference",
                round=0,
                difficulty=problem.difficulty,
                reasoning="\n".join(problem.steps),
                answer=problem.answer,
                reference_answer=problem.answer,
                seed=seed,
                index=problem.index,
                teacher_backend="skills",
                teacher_model="reference",
            )
        )
    return records


def task_golden(items: list[TaskItem]) -> list[Record]:
    """A dataset task's train split as the golden set: it is the user's real data."""
    return [
        Record(
            kind="solution",
            skill=item.category,
            question=item.question,
            source="human",
            round=0,
            reasoning=item.reasoning,
            answer=item.answer,
            reference_answer=item.answer,
            parent_ids=[item.id],
        )
        for item in items
    ]
