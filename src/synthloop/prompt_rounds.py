"""Prompt tasks inside the loop (`generation.prompt_tasks`): each round runs them for the round's
categories, and the rows they make are curated and trained on with their own provenance.

Per category and entry the plan (`plan.json`, `targets.<category>.prompt_tasks`) says how many items
it asks for: `share` of the category's budget (it follows the weakness allocation, and is taken out of
the problems written for the category) or a fixed `per_category`. The teacher's input is the category's
name and description (textbook, exercises, refusal, misinformation), or a train item of the category as
the seed instruction (self_instruct, evol_instruct): the train items the student got wrong when the
category's problems are variations of failures, else train items drawn evenly. Eval items never are.

Folders, each written once with its completion marker (so `--resume` pays for nothing twice):

    rounds/NN/prompted/<name>.topics/   textbook: the category's subtopics, one section written on each
    rounds/NN/prompted/<name>/          the task's rows (sections, exercises, instructions, pairs)
    rounds/NN/prompted/<name>.answers/  exercises, self_instruct, evol_instruct: each question answered with
                                        chain of thought, generation.samples times (`answer` task)

What goes to curation: the answers, exercises (the author's own solution votes with the answers),
textbook sections, refusal and misinformation pairs. Instructions alone (no response) never do.
`RequireVerified` runs after the recipe's stages: a prompt-task row that claims a checkable answer is
kept only when a verifier voted or scored it (self-consistency, judge, code tests), else rejected with
`unverified_answer`; a row with no checkable answer (a section, a refusal, a correction) is judged when
`curation.judge` is set, else kept through the other stages and marked unverified, and counted."""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from synthloop.config import ANSWERED_PROMPT_TASKS, PromptTaskEntry, Recipe
from synthloop.records import Record, with_verdict_of
from synthloop.registry import TASKS
from synthloop.runners.local import Answered, generate, task_rows
from synthloop.scoring.item import TaskItem
from synthloop.sources.dataset import DatasetSource
from synthloop.storage.shards import digest, ids_digest, is_complete, read_records
from synthloop.tasks.answer import AnswerTask
from synthloop.tasks.prompted import EVOLUTIONS, PromptTask, TopicsTask
from synthloop.teachers.base import SamplingParams, TeacherRequest
from synthloop.teachers.engine import Engine

Log = Callable[[str], None]
PROMPTED = "prompted"
ROUND_STRIDE = 1_000_000  # as for written problems: a later round never gets an earlier round's cached replies
SEEDED = ("self_instruct", "evol_instruct")  # their input is a train item of the category
DEFAULT_PER_CALL = 5
CLAIMS_ANSWER = ("exercises", "answer")  # rows whose final answer is a checkable claim
VERIFIERS = ("verify", "verify_code", "self_consistency", "judge", "judge_pairwise")
UNVERIFIED = "unverified"  # the verdict stage that marks a kept row no verifier could judge


# ---- plan --------------------------------------------------------------------------------------------


def items_for(entry: PromptTaskEntry, count: int) -> int:
    """Items an entry asks for in a category whose budget is `count` problems."""
    return entry.per_category if entry.per_category is not None else round((entry.share or 0.0) * count)


def carved_out(recipe: Recipe, count: int, has_train: bool) -> int:
    """The part of a category's budget its `share` entries take (seeded tasks need train items)."""
    return sum(
        items_for(e, count)
        for e in recipe.generation.prompt_tasks
        if e.share is not None and (has_train or e.task not in SEEDED)
    )


def plan_category(
    recipe: Recipe, category: str, count: int, pool: list[TaskItem], failures: list[str], seed: int
) -> dict[str, dict[str, Any]]:
    """Per entry, for one category: items, calls, seed train items (self_instruct, evol_instruct), and why.
    `failures`: the category's train items the student got wrong, when there are enough to vary."""
    planned = {}
    for entry in recipe.generation.prompt_tasks:
        items = items_for(entry, count)
        how = f"share {entry.share:g} of {count}" if entry.share is not None else "per_category"
        plan: dict[str, Any] = {"items": items, "why": how}
        if entry.task in SEEDED and not pool:
            plan = {"items": 0, "why": "no train items to seed instructions with (its share stays with the problems)"}
        elif entry.task in SEEDED:
            chosen = list(failures or [item.id for item in pool])
            random.Random(f"{seed}/{category}/{entry.label}").shuffle(chosen)
            plan["seeds"] = chosen[: calls_for(entry, items)]
            plan["why"] += f"; seeds: {'train items answered wrong' if failures else 'train items drawn evenly'}"
        plan["calls"] = calls_for(entry, plan["items"])
        planned[entry.label] = plan
    return planned


def calls_for(entry: PromptTaskEntry, items: int) -> int:
    if entry.task == "evol_instruct":
        return items  # one evolved instruction per call
    return math.ceil(items / (entry.per_call or DEFAULT_PER_CALL))  # textbook: topics calls


# ---- requests ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    request: TeacherRequest
    category: str
    item: str  # the input text (a topic, a seed instruction)
    parent_id: str | None  # the train item or subtopic row it came from


def entry_task(entry: PromptTaskEntry) -> PromptTask:
    count = entry.per_call or DEFAULT_PER_CALL
    return TASKS.get(entry.task)(template=entry.template, count=count)


def sampling_for(entry: PromptTaskEntry, recipe: Recipe) -> SamplingParams:
    g = recipe.generation
    temperature = entry.temperature if entry.temperature is not None else g.problem_temperature
    return SamplingParams(temperature, max_tokens=entry.max_tokens or g.max_tokens)


def topic_of(category: str, description: str) -> str:
    return f"{category} ({description.strip()})" if description.strip() else category


def first_calls(
    entry: PromptTaskEntry, targets: dict[str, dict[str, Any]], source: DatasetSource, recipe: Recipe, number: int
) -> list[Call]:
    """The entry's first calls of the round: topics for textbook, else the task itself."""
    task = TopicsTask(count=entry.per_call or DEFAULT_PER_CALL) if entry.task == "textbook" else entry_task(entry)
    sampling, by_id = sampling_for(entry, recipe), {item.id: item for item in source.train}
    calls = []
    for category, target in targets.items():
        plan = target.get("prompt_tasks", {}).get(entry.label, {"calls": 0})
        topic = topic_of(category, source.descriptions.get(category, ""))
        seeds = [by_id[i] for i in plan.get("seeds", []) if i in by_id]
        for k in range(plan["calls"]):
            seed = seeds[k % len(seeds)] if seeds else None
            item = seed.question if seed else topic
            persona = entry.personas[k % len(entry.personas)] if entry.personas else None
            ops = entry.operations or list(EVOLUTIONS)
            operation = ops[k % len(ops)] if entry.task == "evol_instruct" else None
            request = task.build_request(item, sampling, (number - 1) * ROUND_STRIDE + k, persona, operation)
            calls.append(Call(request, category, item, seed.id if seed else None))
    return calls


def section_calls(
    entry: PromptTaskEntry, topics: list[Record], targets: dict[str, Any], recipe: Recipe, number: int
) -> list[Call]:
    """Textbook: one section on each distinct subtopic, up to the category's items."""
    task, sampling = entry_task(entry), sampling_for(entry, recipe)
    calls: list[Call] = []
    taken: dict[str, set[str]] = {}
    for row in topics:
        seen = taken.setdefault(row.skill, set())
        wanted = targets.get(row.skill, {}).get("prompt_tasks", {}).get(entry.label, {}).get("items", 0)
        if row.error is not None or not row.question or row.question in seen or len(seen) >= wanted:
            continue
        seen.add(row.question)
        persona = entry.personas[len(calls) % len(entry.personas)] if entry.personas else None
        request = task.build_request(row.question, sampling, (number - 1) * ROUND_STRIDE, persona)
        calls.append(Call(request, row.skill, row.question, row.id))
    return calls


def answer_calls(rows: list[Record], recipe: Recipe) -> list[Call]:
    """Every usable question answered with chain of thought, generation.samples times (one call, n samples)."""
    g, task = recipe.generation, AnswerTask()
    sampling = SamplingParams(g.temperature, max_tokens=g.max_tokens, n=g.samples)
    return [
        Call(task.build_request(row.question, sampling), row.skill, row.question, row.id)
        for row in rows
        if row.error is None and row.question.strip()
    ]


# ---- run ---------------------------------------------------------------------------------------------


@dataclass
class Round:
    """What every prompt-task step of one round shares."""

    engine: Engine
    recipe: Recipe
    number: int
    rdir: Path
    retry_failed: bool
    log: Log

    def step(self, task: PromptTask, calls: list[Call], out: Path, inputs: str, version: str = "") -> dict[str, Any]:
        by_request = {id(call.request): call for call in calls}
        make = self.maker(task, by_request, version or task.template_version)
        requests = [call.request for call in calls]
        g = self.recipe.generation
        return generate(self.engine, task, requests, make, out, g.shard_size, self.retry_failed, self.log, inputs)

    def maker(self, task: PromptTask, by_request: dict[int, Call], version: str) -> Callable[[Answered], list[Record]]:
        backend, model, recipe_hash = self.engine.teacher.backend, self.engine.teacher.model, self.recipe.hash()

        def make(answered: Answered) -> list[Record]:
            call = by_request[id(answered.request)]
            common = {
                "kind": task.kind,
                "skill": call.category,
                "source": "synthetic",
                "round": self.number,
                "messages": list(answered.request.messages),
                "teacher_backend": backend,
                "teacher_model": model,
                "task": task.name,
                "template_version": version,
                "recipe_hash": recipe_hash,
                "request_id": answered.request.key(backend, model),
                "parent_ids": [call.parent_id] if call.parent_id else [],
            }
            return task_rows(answered, common, call.item)

        return make


def plan_digest(targets: dict[str, dict[str, Any]], label: str) -> str:
    return digest([json.dumps({c: t.get("prompt_tasks", {}).get(label) for c, t in targets.items()}, sort_keys=True)])


def folder(rdir: Path, entry: PromptTaskEntry, suffix: str = "") -> Path:
    return rdir / PROMPTED / f"{entry.label}{suffix}"


def run_prompt_tasks(
    engine: Engine,
    source: DatasetSource,
    targets: dict[str, dict[str, Any]],
    recipe: Recipe,
    number: int,
    rdir: Path,
    retry_failed: bool,
    log: Log,
) -> dict[str, Any]:
    """Run every entry of `generation.prompt_tasks` for the round; returns per entry its calls and rows."""
    run = Round(engine, recipe, number, rdir, retry_failed, log)
    out: dict[str, Any] = {}
    for entry in recipe.generation.prompt_tasks:
        stats: dict[str, Any] = {"steps": {}}
        main = folder(rdir, entry)
        if entry.task == "textbook":
            topics_dir = folder(rdir, entry, ".topics")
            first = first_calls(entry, targets, source, recipe, number)
            stats["steps"]["topics"] = run.step(TopicsTask(), first, topics_dir, plan_digest(targets, entry.label))
            sections = section_calls(entry, read_records(topics_dir), targets, recipe, number)
            version = version_of(entry)
            stats["steps"]["textbook"] = run.step(entry_task(entry), sections, main, ids_digest(topics_dir), version)
        else:
            first = first_calls(entry, targets, source, recipe, number)
            stats["steps"][entry.task] = run.step(
                entry_task(entry), first, main, plan_digest(targets, entry.label), version_of(entry)
            )
        if entry.task in ANSWERED_PROMPT_TASKS:
            answers, answers_dir = answer_calls(read_records(main), recipe), folder(rdir, entry, ".answers")
            stats["steps"]["answer"] = run.step(AnswerTask(), answers, answers_dir, ids_digest(main))
        made = read_records(main)
        per_category = {c: 0 for c in targets}
        for row in made:
            if row.error is None:
                per_category[row.skill] = per_category.get(row.skill, 0) + 1
        stats["rows_per_category"] = per_category
        stats["written"] = any(s.get("written") for s in stats["steps"].values())
        log(
            f"round {number}: prompt task {entry.label}: {sum(per_category.values())} usable rows "
            + " ".join(f"{c}={n}" for c, n in per_category.items())
            + (f", {stats['steps']['answer']['rows']} answers" if "answer" in stats["steps"] else "")
        )
        out[entry.label] = stats
    return out


def version_of(entry: PromptTaskEntry) -> str:
    version = TASKS.get(entry.task).template_version
    return version if entry.template is None else f"{version}+custom"


# ---- what curation reads, and what a finished round checks ---------------------------------------------


def candidate_dirs(rdir: Path, recipe: Recipe) -> list[tuple[str, Path]]:
    """(origin, folder) of every folder whose rows are curated: the written problems' solutions, then
    each prompt task's trainable rows."""
    origin = "write_problems" if recipe.task.type == "dataset" else recipe.generation.task
    dirs = [(origin, rdir / "generated")]
    for entry in recipe.generation.prompt_tasks:
        if entry.task not in SEEDED:  # instructions alone have no response to train on
            dirs.append((entry.label, folder(rdir, entry)))
        if entry.task in ANSWERED_PROMPT_TASKS:
            dirs.append((entry.label, folder(rdir, entry, ".answers")))
    return dirs


def candidate_digests(rdir: Path, recipe: Recipe) -> list[str]:
    """What curation is made from (just the generated rows' digest when no prompt task is configured)."""
    return [ids_digest(path) for _, path in candidate_dirs(rdir, recipe)]


def prompted_complete(rdir: Path, recipe: Recipe, targets: dict[str, dict[str, Any]]) -> bool:
    """Every prompt-task folder of a finished round is intact and made from what it was made from."""
    for entry in recipe.generation.prompt_tasks:
        main, made_from = folder(rdir, entry), plan_digest(targets, entry.label)
        if entry.task == "textbook":
            topics = folder(rdir, entry, ".topics")
            if not is_complete(topics, made_from):
                return False
            made_from = ids_digest(topics)
        if not is_complete(main, made_from):
            return False
        answers = folder(rdir, entry, ".answers")
        if entry.task in ANSWERED_PROMPT_TASKS and not is_complete(answers, ids_digest(main)):
            return False
    return True


# ---- curation: the verification guard and the counts -------------------------------------------------


def is_prompted(row: Record) -> bool:
    return row.task in (*CLAIMS_ANSWER, "textbook", "refusal", "misinformation")


def verified(row: Record) -> bool:
    return any(v.keep and v.score is not None and v.stage in VERIFIERS for v in row.verdicts)


class RequireVerified:
    """After the recipe's stages: a kept prompt-task row claiming an answer that no verifier voted on or
    scored is rejected (`unverified_answer`); one with no checkable answer is kept and marked unverified."""

    name = "require_verified"

    def __init__(self) -> None:
        self.unverified: dict[str, int] = {}

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for row in records:
            if row.kept and is_prompted(row) and not verified(row):
                if row.task in CLAIMS_ANSWER:
                    why = "no verifier voted on or scored this answer (a single sample and no judge)"
                    row.add_verdict(self.name, False, "unverified_answer", None, why)
                else:
                    self.unverified[row.task] = self.unverified.get(row.task, 0) + 1
                    row.add_verdict(UNVERIFIED, True, None, None, "no checkable answer and no curation.judge")
            yield row


class TaskTally:
    """`kept_per_task` ({origin: {category: kept}}, 0 where nothing was kept) and `unverified_per_task`,
    counted as the curated rows stream past. `folders`: (origin, rows) of each folder read, in the order
    read; a row's origin is told by its position in that stream (every stage keeps the rows' order)."""

    def __init__(self, folders: Iterable[tuple[str, int]], categories: Iterable[str]):
        folders, names = list(folders), list(categories)
        self.labels = [label for label, _ in folders]
        self.ends = np.cumsum([rows for _, rows in folders], dtype=np.int64).tolist()
        self.per_task: dict[str, dict[str, int]] = {label: dict.fromkeys(names, 0) for label in self.labels}
        self.unverified: dict[str, int] = {}
        self.seen = 0

    def origins(self, positions: np.ndarray) -> np.ndarray:
        """The index of the folder each position's row came from."""
        return np.searchsorted(self.ends, positions, side="right")

    def row(self, row: Record) -> None:
        """The next row out of curation (in this process)."""
        label = self.labels[bisect.bisect_right(self.ends, self.seen)]
        self.seen += 1
        if row.kept:
            self.count(label, row.skill, any(v.stage == UNVERIFIED for v in row.verdicts))

    def table(self, rows: pa.Table, positions: np.ndarray, live: np.ndarray) -> None:
        """A batch of rows out of curation on Ray, with their positions and which of them were kept."""
        unverified = with_verdict_of(rows, UNVERIFIED)
        origins, skills = self.origins(positions), rows.column("skill").to_pylist()
        for i in np.flatnonzero(live).tolist():
            self.count(self.labels[int(origins[i])], skills[i], bool(unverified[i]))

    def count(self, label: str, skill: str, unverified: bool) -> None:
        per = self.per_task.setdefault(label, {})
        per[skill] = per.get(skill, 0) + 1
        if unverified:
            self.unverified[label] = self.unverified.get(label, 0) + 1

    def counts(self) -> dict[str, dict[str, Any]]:
        return {"kept_per_task": self.per_task, "unverified_per_task": self.unverified}


def kept_line(per_task: dict[str, dict[str, int]]) -> str:
    """The log's account: per origin, its total and the categories that kept nothing."""
    parts = []
    for label, per_category in per_task.items():
        empty = [c for c, n in per_category.items() if n == 0]
        parts.append(f"{label}={sum(per_category.values())}" + (f" (0 in {', '.join(empty)})" if empty else ""))
    return " ".join(parts)


def first_requests(
    source: DatasetSource, targets: dict[str, dict[str, Any]], recipe: Recipe, number: int
) -> list[TeacherRequest]:
    """The prompt tasks' first calls of a round (for `--dry-run`; what they lead to depends on the replies)."""
    return [c.request for e in recipe.generation.prompt_tasks for c in first_calls(e, targets, source, recipe, number)]


def prompt_task_calls(rdir: Path) -> dict[str, dict[str, Any]]:
    """Per prompt-task folder of a round: its calls (issued, cached, failed, tokens) and rows, from its marker."""
    out = {}
    for path in sorted((rdir / PROMPTED).glob("*/_SUCCESS.json")):
        marker = json.loads(path.read_text())
        calls = marker.get("calls", {})
        out[path.parent.name] = {
            **{k: calls[k] for k in ("issued", "cached", "failed", "prompt_tokens", "completion_tokens") if k in calls},
            "rows": marker.get("rows", 0),
        }
    return out
