"""Held-out golden probes: a fixed set per skill, from a seed stream no other stage uses, the same
in every round. Curation rejects any generated or golden item whose question is a probe."""

from __future__ import annotations

from synthloop.skills.base import Problem, Skill


def build_probes(skills: dict[str, Skill], difficulties: dict[str, int], per_skill: int, seed: int) -> list[Problem]:
    probes, seen = [], set()
    for name, skill in skills.items():
        index, kept = 0, 0
        while kept < per_skill and index < per_skill * 50:  # small item spaces repeat: keep probes distinct
            problem = skill.generate(seed, index, difficulties[name])
            index += 1
            if problem.question not in seen:
                seen.add(problem.question)
                probes.append(problem)
                kept += 1
    return probes
