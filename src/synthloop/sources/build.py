"""The recipe's task source, built (and, for a dataset, read and checked) before anything is written."""

from __future__ import annotations

from typing import Any

from synthloop.config import Recipe, ScorerConfig
from synthloop.registry import SKILLS
from synthloop.scoring.context import ScoringContext
from synthloop.sources.base import TaskSource
from synthloop.sources.dataset import load_dataset_source
from synthloop.sources.skills import SkillsSource


def build_source(recipe: Recipe, probe_seed: int, scoring_context: ScoringContext | None = None) -> TaskSource:
    """`scoring_context`: where a judge scorer's calls are cached, and whether its model is checked now
    (see `synthloop.scoring.context`); None: judge calls go uncached."""
    if recipe.task.type == "dataset":
        from synthloop.scoring.scorers import make_scorer

        def scorer(config: ScorerConfig) -> Any:
            return make_scorer(config, scoring_context)

        return load_dataset_source(recipe.task, scorer, probe_seed)
    skills = {name: SKILLS.get(name) for name in recipe.skills}
    difficulty = {name: spec.difficulty for name, spec in recipe.skills.items()}
    return SkillsSource(skills, difficulty, recipe.evaluation.probes_per_skill, probe_seed)
