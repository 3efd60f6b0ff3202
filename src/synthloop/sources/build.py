"""The recipe's task source, built (and, for a dataset, read and checked) before anything is written."""

from __future__ import annotations

from typing import Any

from synthloop.config import Recipe, ScorerConfig
from synthloop.registry import SKILLS
from synthloop.sources.base import TaskSource
from synthloop.sources.dataset import load_dataset_source
from synthloop.sources.skills import SkillsSource


def build_source(recipe: Recipe, probe_seed: int, scoring_context: Any = None) -> TaskSource:
    """`scoring_context`: what a judge scorer needs to call its model (see `synthloop.scoring.scorers`)."""
    if recipe.task.type == "dataset":
        from synthloop.scoring.scorers import make_scorer

        def scorer(config: ScorerConfig) -> Any:
            return make_scorer(config, scoring_context)

        return load_dataset_source(recipe.task, scorer, probe_seed)
    skills = {name: SKILLS.get(name) for name in recipe.skills}
    difficulty = {name: spec.difficulty for name, spec in recipe.skills.items()}
    return SkillsSource(skills, difficulty, recipe.evaluation.probes_per_skill, probe_seed)
