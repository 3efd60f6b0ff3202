"""Generation aimed at a dataset task's weak categories, in two steps.

1. Problems. For each category's share of the budget the teacher writes new problems: like the train
   items the student got wrong last round (failure-driven variations), or, where a category has fewer
   than `min_failures` failures to learn from (or no train items at all), from the category's name and
   description (topic-driven exercises). `strategy: uniform` takes the examples evenly from the train
   split instead: the baseline the benchmark compares against. Round 1 has no student answers yet, so
   its examples are drawn evenly from the train split. Eval items are never examples.
2. Solutions. The teacher solves every new problem with chain of thought, `generation.samples` times.
   Curation keeps a problem only when its answers are verified (self-consistency, the judge, code tests);
   the majority answer becomes its reference.

Problem rows go to `rounds/NN/problems/`, solutions to `rounds/NN/generated/`, each solution naming its
problem in `parent_ids` and each problem its example: a training row traces back to the failure it came from."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthloop.config import Recipe
from synthloop.prompt_rounds import carved_out, plan_category, run_prompt_tasks
from synthloop.records import Record
from synthloop.runners.local import Answered, generate, solution_rows, usage_fields
from synthloop.scoring.item import TaskItem
from synthloop.sources.dataset import DatasetSource
from synthloop.storage.shards import ids_digest, read_records
from synthloop.tasks.solve import SolveTask
from synthloop.tasks.write_problems import WriteProblemsTask
from synthloop.teachers.base import SamplingParams, TeacherRequest
from synthloop.teachers.engine import Engine

Log = Callable[[str], None]


def plan_targets(
    source: DatasetSource, counts: dict[str, int], failures: dict[str, list[str]] | None, recipe: Recipe, seed: int
) -> dict[str, dict[str, Any]]:
    """Per category: how its new problems are written (`variations` or `exercises`), from which train
    items, and why. `failures`: the ids of the train items the student got wrong (None in round 1)."""
    g = recipe.generation
    train = source.train_by_category()
    targets = {}
    for category, budget in counts.items():
        pool = train.get(category, [])
        count = max(0, budget - carved_out(recipe, budget, bool(pool)))  # prompt tasks' share of the budget
        calls = math.ceil(count / g.problems_per_call) if count else 0
        if not pool:
            target = {"mode": "exercises", "why": "no train items in this category"}
        elif failures is None or g.strategy == "uniform":
            why = "uniform strategy" if g.strategy == "uniform" else "round 1: no student answers yet"
            target = {"mode": "variations", "examples": [i.id for i in pool], "why": f"{why}; examples from train"}
        elif len(wrong := failures.get(category, [])) >= g.min_failures:
            target = {"mode": "variations", "examples": wrong, "why": f"{len(wrong)} train items answered wrong"}
        else:
            target = {
                "mode": "exercises",
                "why": f"{len(wrong)} train items answered wrong, fewer than generation.min_failures {g.min_failures}",
            }
        if "examples" in target:
            examples = target["examples"][:]
            random.Random(f"{seed}/{category}").shuffle(examples)
            target["examples"] = examples[:calls]  # each call one example, cycling when there are fewer
        targets[category] = {**target, "problems": count, "calls": calls}
        if g.prompt_tasks:
            wrong = failures.get(category, []) if failures is not None and g.strategy == "failures" else []
            seeds = wrong if len(wrong) >= g.min_failures else []  # else train items drawn evenly
            targets[category]["prompt_tasks"] = plan_category(recipe, category, budget, pool, seeds, seed)
    return targets


ROUND_STRIDE = 1_000_000  # more calls than a round makes: sample indices of different rounds never meet


def problem_requests(
    source: DatasetSource, targets: dict[str, dict[str, Any]], recipe: Recipe, number: int
) -> list[tuple[TeacherRequest, str, str | None]]:
    """(request, category, example id) for every problem-writing call. The sample index runs on across
    rounds, so a later round asking about the same example never gets an earlier round's cached problems."""
    g = recipe.generation
    task = WriteProblemsTask(g.problems_per_call)
    sampling = SamplingParams(g.problem_temperature, max_tokens=g.max_tokens)
    by_id = {item.id: item for item in source.train}
    descriptions = source.descriptions
    calls = []
    for category, target in targets.items():
        description = descriptions.get(category, "")
        examples = [by_id[i] for i in target.get("examples", []) if i in by_id]
        first = (number - 1) * ROUND_STRIDE
        for call in range(target["calls"]):
            if target["mode"] == "variations" and examples:
                example = examples[call % len(examples)]
                request = task.like_example(example, description, sampling, first + call // len(examples))
                calls.append((request, category, example.id))
            else:
                calls.append((task.from_topic(category, description, sampling, first + call), category, None))
    return calls


def generate_round(
    engine: Engine,
    source: DatasetSource,
    targets: dict[str, dict[str, Any]],
    recipe: Recipe,
    number: int,
    rdir: Path,
    retry_failed: bool,
    log: Log,
    inputs: str,
) -> dict[str, Any]:
    """Write the problems, then solve them; returns the solve step's stats with the problem step's inside."""
    calls = problem_requests(source, targets, recipe, number)
    about = {id(request): (category, example) for request, category, example in calls}
    problems_task = WriteProblemsTask(recipe.generation.problems_per_call)
    shard_size = recipe.generation.shard_size
    problem_stats = generate(
        engine,
        problems_task,
        [request for request, _, _ in calls],
        problem_maker(engine, problems_task, about, recipe, number),
        rdir / "problems",
        shard_size,
        retry_failed,
        log,
        inputs,
    )
    problems = [row for row in read_records(rdir / "problems") if row.error is None]
    solve, g = SolveTask(), recipe.generation
    sampling = SamplingParams(g.temperature, max_tokens=g.max_tokens, n=g.samples)
    requests = [solve.request_for(row.question, sampling) for row in problems]
    by_request = {id(request): row for request, row in zip(requests, problems, strict=True)}
    stats = generate(
        engine,
        solve,
        requests,
        solution_maker(engine, solve, by_request, recipe, number),
        rdir / "generated",
        shard_size,
        retry_failed,
        log,
        ids_digest(rdir / "problems"),
    )
    wanted = sum(t["problems"] for t in targets.values())
    written = {c: 0 for c in targets}
    for row in problems:
        written[row.skill] = written.get(row.skill, 0) + 1
    stats["problems"] = {
        "wanted": wanted,
        "written": len(problems),
        "per_category": written,
        "calls": problem_stats["calls"],
        "parse_failed": problem_stats.get("parse_failed", 0),
    }
    stats["written"] = stats["written"] or problem_stats["written"]
    if recipe.generation.prompt_tasks:  # their rows go to rounds/NN/prompted/, curated with the solutions
        prompted = run_prompt_tasks(engine, source, targets, recipe, number, rdir, retry_failed, log)
        stats["prompt_tasks"] = prompted
        stats["written"] = stats["written"] or any(p["written"] for p in prompted.values())
    return stats


def common_fields(engine: Engine, task: Any, recipe: Recipe, number: int, answered: Answered) -> dict[str, Any]:
    backend, model = engine.teacher.backend, engine.teacher.model
    return {
        "source": "synthetic",
        "round": number,
        "messages": list(answered.request.messages),
        "teacher_backend": backend,
        "teacher_model": model,
        "task": task.name,
        "template_version": task.template_version,
        "recipe_hash": recipe.hash(),
        "request_id": answered.request.key(backend, model),
    }


def problem_maker(
    engine: Engine, task: WriteProblemsTask, about: dict[int, tuple[str, str | None]], recipe: Recipe, number: int
) -> Callable[[Answered], list[Record]]:
    def make(answered: Answered) -> list[Record]:
        category, example = about[id(answered.request)]
        common = {
            **common_fields(engine, task, recipe, number, answered),
            "kind": task.kind,
            "skill": category,
            "parent_ids": [example] if example else [],
        }
        if not answered.samples:
            return [Record(**common, question="", error=answered.response.error, **usage_fields(answered, True))]
        rows: list[Record] = []
        for sample in answered.samples:
            if sample.parsed.failure:
                rows.append(
                    Record(
                        **common,
                        question="",
                        raw_output=sample.text,
                        parse_status=sample.status,
                        error=f"parse: {sample.parsed.failure}",
                        sample_index=len(rows),
                        **usage_fields(answered, not rows),
                    )
                )
                continue
            for item in sample.parsed.items:
                rows.append(
                    Record(
                        **common,
                        question=item.question or "",
                        raw_output=sample.repair_text or sample.text,
                        parse_status=sample.status,
                        sample_index=len(rows),
                        **usage_fields(answered, not rows),
                    )
                )
        return rows

    return make


def solution_maker(
    engine: Engine, task: SolveTask, by_request: dict[int, Record], recipe: Recipe, number: int
) -> Callable[[Answered], list[Record]]:
    def make(answered: Answered) -> list[Record]:
        problem = by_request[id(answered.request)]
        common = {
            **common_fields(engine, task, recipe, number, answered),
            "kind": task.kind,
            "skill": problem.skill,
            "question": problem.question,
            "parent_ids": [problem.id],
        }
        return solution_rows(answered, common)

    return make


def train_probe_items(source: DatasetSource, per_category: int, seed: int) -> list[TaskItem]:
    """The train items the student answers after a round, to find the failures the next round varies: a
    seeded sample per category, a different one each round so that more of the train split is seen."""
    items = []
    for category, group in sorted(source.train_by_category().items()):
        if category not in source.categories():
            continue
        rng = random.Random(f"{seed}/{category}")
        items += group if len(group) <= per_category else rng.sample(group, per_category)
    return items
