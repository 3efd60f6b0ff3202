"""Score the student on the probes: per-skill exact-match accuracy from its own free-text answers."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from synthloop.evaluation.generate import greedy_answers
from synthloop.registry import SKILLS
from synthloop.skills.answers import extract_final_answer
from synthloop.skills.base import Problem
from synthloop.training.format import student_prompt


def evaluate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    probes: list[Problem],
    max_new_tokens: int,
    batch_size: int,
) -> dict[str, Any]:
    """`{"per_skill": {skill: accuracy}, "macro": mean, "items": [...]}`; items keep every answer."""
    outputs = greedy_answers(model, tokenizer, [student_prompt(p.question) for p in probes], max_new_tokens, batch_size)
    per_skill: dict[str, list[float]] = {}
    items = []
    for problem, output in zip(probes, outputs, strict=True):
        score = SKILLS.get(problem.skill).score(output, problem.answer)
        per_skill.setdefault(problem.skill, []).append(score)
        items.append(
            {
                "skill": problem.skill,
                "index": problem.index,
                "question": problem.question,
                "reference": problem.answer,
                "extracted": extract_final_answer(output),
                "score": score,
                "output": output,
            }
        )
    accuracy = {skill: sum(s) / len(s) for skill, s in per_skill.items()}
    return {"per_skill": accuracy, "macro": sum(accuracy.values()) / len(accuracy), "items": items}
