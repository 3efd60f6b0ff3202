"""`synthloop skills export`: the built-in skills written as a plain user dataset (train.jsonl and
eval.jsonl with question, answer and category only), so the `dataset` task path can be tried and
tested on data whose truth is known. Train and eval come from separate seed streams and share no
question."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from synthloop.registry import SKILLS
from synthloop.storage.atomic import write_text


def export_skills(
    out: Path, skills: list[str], train_per_skill: int, eval_per_skill: int, difficulty: int, seed: int
) -> dict[str, int]:
    """Write OUT/train.jsonl and OUT/eval.jsonl; returns the rows written to each."""
    seen: set[str] = set()
    splits: dict[str, list[dict[str, str]]] = {"eval": [], "train": []}
    for split, per_skill in (("eval", eval_per_skill), ("train", train_per_skill)):
        for name in skills:
            skill, index, kept = SKILLS.get(name), 0, 0
            while kept < per_skill and index < per_skill * 50:  # small item spaces repeat: keep questions distinct
                problem = skill.generate(hash_seed(seed, split), index, difficulty)
                index += 1
                if problem.question in seen:
                    continue
                seen.add(problem.question)
                splits[split].append({"question": problem.question, "answer": problem.answer, "category": name})
                kept += 1
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_text(out / f"{split}.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    return {split: len(rows) for split, rows in splits.items()}


def hash_seed(seed: int, split: str) -> int:
    return int(hashlib.sha256(f"export/{seed}/{split}".encode()).hexdigest()[:12], 16)
