"""The golden set: a user's human examples (JSONL or Parquet), or, for the embedded default,
reference items written by the skills from a seed stream of their own.

A user's row needs `question` and `answer`; `reasoning` and `skill` are optional. A bad file or row
raises `GoldenSetError` naming the file and line, before anything is trained on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthloop.records import Record
from synthloop.skills.base import Skill


class GoldenSetError(ValueError):
    pass


def load_golden_file(path: str | Path, round_: int = 0) -> list[Record]:
    path = Path(path)
    if not path.is_file():
        raise GoldenSetError(f"golden set not found: {path}")
    if path.suffix == ".parquet":
        rows = read_parquet_rows(path)
    elif path.suffix in (".jsonl", ".json"):
        rows = read_jsonl_rows(path)
    else:
        raise GoldenSetError(f"golden set {path}: use a .jsonl or .parquet file")
    return [golden_record(row, where, round_) for row, where in rows]


def read_jsonl_rows(path: Path) -> list[tuple[dict[str, Any], str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise GoldenSetError(f"cannot read golden set {path}: {err}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise GoldenSetError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise GoldenSetError(f"{where}: each line must be a JSON object with 'question' and 'answer'")
        rows.append((row, where))
    if not rows:
        raise GoldenSetError(f"golden set {path} has no rows")
    return rows


def read_parquet_rows(path: Path) -> list[tuple[dict[str, Any], str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise GoldenSetError(f"cannot read golden set {path}: {err}") from None
    return [(row, f"{path} row {i + 1}") for i, row in enumerate(table.to_pylist())]


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
