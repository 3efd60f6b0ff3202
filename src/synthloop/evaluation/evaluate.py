"""Score the student's free-text answers with the task's scorers: per-category accuracy, every answer kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synthloop.scoring.item import Score, TaskItem


def score_report(items: Sequence[TaskItem], outputs: Sequence[str], scores: Sequence[Score]) -> dict[str, Any]:
    """`{"per_skill": {category: accuracy}, "macro": mean, "items": [...]}`; items keep every answer.
    (`per_skill` names the built-in skills' categories too: the run directory's contract keeps the key.)"""
    per_category: dict[str, list[float]] = {}
    rows = []
    for item, output, score in zip(items, outputs, scores, strict=True):
        per_category.setdefault(item.category, []).append(score.value)
        rows.append(
            {
                "skill": item.category,
                "id": item.id,
                "question": item.question,
                "reference": item.answer,
                "extracted": score.extracted,
                "score": score.value,
                "detail": score.detail,
                "output": output,
            }
        )
    accuracy = {category: sum(s) / len(s) for category, s in per_category.items()}
    macro = sum(accuracy.values()) / len(accuracy) if accuracy else 0.0
    unscored = sum(score.unscored for score in scores)  # counted as wrong; a judge scorer stops past a tenth
    return {"per_skill": accuracy, "macro": macro, "unscored": unscored, "items": rows}
