"""The built-in procedural skills as a task source: fixed probes per skill from a seed stream of
their own, each scored by the skill's own scorer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from synthloop.evaluation.probes import build_probes
from synthloop.registry import SKILLS
from synthloop.scoring.item import Score, TaskItem
from synthloop.skills.base import Problem, Skill
from synthloop.skills.final_answer import find_final_answer


def problem_item(problem: Problem) -> TaskItem:
    return TaskItem(
        id=f"{problem.skill}/{problem.seed}/{problem.index}/{problem.difficulty}",
        question=problem.question,
        answer=problem.answer,
        category=problem.skill,
        reasoning="\n".join(problem.steps),
        difficulty=problem.difficulty,
    )


@dataclass
class SkillsSource:
    skills: dict[str, Skill]
    difficulty: dict[str, int]
    probes_per_skill: int
    probe_seed: int
    kind: str = "skills"
    notices: list[str] = field(default_factory=list)

    def categories(self) -> dict[str, str]:
        return {name: skill.description for name, skill in self.skills.items()}

    def eval_items(self) -> list[TaskItem]:
        probes = build_probes(self.skills, self.difficulty, self.probes_per_skill, self.probe_seed)
        return [problem_item(p) for p in probes]

    def score(self, outputs: Sequence[str], items: Sequence[TaskItem]) -> list[Score]:
        scores = []
        for output, item in zip(outputs, items, strict=True):
            found = find_final_answer(output, (item.answer,))
            scores.append(Score(SKILLS.get(item.category).score(output, item.answer), found.value, found.problem))
        return scores
