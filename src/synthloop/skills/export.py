"""`synthloop skills export`: the built-in skills written as a plain user dataset (train.jsonl and
eval.jsonl with question, answer and category only), so the `dataset` task path can be tried and
tested on data whose truth is known. Train and eval come from separate seed streams and share no
question."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from synthloop.registry import SKILLS
from synthloop.storage.atomic import write_text

EXPORTED_FIELDS = ("question", "answer", "category")


def export_rows(
    skills: list[str], train_per_skill: int, eval_per_skill: int, difficulties: list[int], seed: int
) -> dict[str, list[dict[str, Any]]]:
    """{"train": rows, "eval": rows}; each row also says its difficulty (which the files leave out)."""
    seen: set[str] = set()
    splits: dict[str, list[dict[str, Any]]] = {"eval": [], "train": []}
    for split, per_skill in (("eval", eval_per_skill), ("train", train_per_skill)):
        for name in skills:
            skill, index, kept = SKILLS.get(name), 0, 0
            while kept < per_skill and index < per_skill * 50:  # small item spaces repeat: keep questions distinct
                difficulty = difficulties[index % len(difficulties)]
                problem = skill.generate(split_seed(seed, split), index, difficulty)
                index += 1
                if problem.question in seen:
                    continue
                seen.add(problem.question)
                row = {"question": problem.question, "answer": problem.answer, "category": name}
                splits[split].append({**row, "difficulty": difficulty})
                kept += 1
    return splits


def export_skills(
    out: Path, skills: list[str], train_per_skill: int, eval_per_skill: int, difficulties: list[int], seed: int
) -> dict[str, int]:
    """Write OUT/train.jsonl and OUT/eval.jsonl, each skill's items spread evenly over `difficulties`;
    returns the rows written to each."""
    splits = export_rows(skills, train_per_skill, eval_per_skill, difficulties, seed)
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        lines = (json.dumps({k: row[k] for k in EXPORTED_FIELDS}) + "\n" for row in rows)
        write_text(out / f"{split}.jsonl", "".join(lines))
    return {split: len(rows) for split, rows in splits.items()}


def split_seed(seed: int, split: str) -> int:
    return int(hashlib.sha256(f"export/{seed}/{split}".encode()).hexdigest()[:12], 16)
