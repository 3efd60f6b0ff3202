"""`synthloop generate JOB.yaml`: run prompt tasks (topics, textbook, exercises, self_instruct,
evol_instruct, refusal, misinformation, and `answer`, which answers the rows of an earlier step) through
the engine, step by step, into Parquet.

A step takes its inputs from the job (`inputs`, or `inputs_file`: JSONL with the task's input
field, or plain text one per line) or from an earlier step's rows (`from`), e.g. a topic tree feeding
textbook sections. Each step writes `RUN/steps/<name>/` once all its calls are answered or failed;
the shared response cache makes a killed job resume at the granularity of single calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, StrictInt, ValidationError, field_validator, model_validator

from synthloop.config import (
    Name,
    OracleTeacherConfig,
    RecipeError,
    Seed,
    Strict,
    TeacherConfig,
    describe,
    first_error,
    identity_hash,
    read_yaml_file,
)
from synthloop.records import Record
from synthloop.registry import TASKS
from synthloop.runners.local import Answered, generate, task_rows
from synthloop.storage.atomic import write_json
from synthloop.storage.input_files import MAX_FIELD_BYTES, OVERSIZE, InputFileError, read_jsonl_rows, read_text_lines
from synthloop.storage.lock import holding_run_dir, unlock_run_dir
from synthloop.storage.response_cache import ResponseCache
from synthloop.storage.rundir import EmptyOutputError, open_manifest
from synthloop.storage.shards import ids_digest, iter_records, read_records, reset
from synthloop.tasks.answer import PlainAnswerTask
from synthloop.tasks.prompted import EVOLUTIONS, PromptTask
from synthloop.teachers.base import SamplingParams, TeacherRequest
from synthloop.teachers.engine import Engine
from synthloop.teachers.estimate import estimate
from synthloop.teachers.factory import check_engine, check_teacher, engine_settings, make_teacher
from synthloop.teachers.progress import Progress

MAX_STEP_CALLS = 10_000_000  # inputs x samples of one step; more is a mistake (and would hang even --dry-run)
PROMPT_TASKS = (
    "topics",
    "textbook",
    "exercises",
    "self_instruct",
    "evol_instruct",
    "refusal",
    "misinformation",
    "answer",
)


class StepConfig(Strict):
    name: Name = Field(description="names the step's output directory and lets later steps use it with `from`")
    task: str = Field(description=f"one of {', '.join(PROMPT_TASKS)}")
    inputs: list[str] | None = Field(None, description="the step's inputs (subjects, topics, instructions, ...)")
    inputs_file: str | None = Field(None, description="JSONL with the task's input field, or text, one per line")
    from_step: str | None = Field(None, alias="from", description="an earlier step whose rows are the inputs")
    limit: StrictInt | None = Field(None, ge=1, le=10_000_000, description="use at most this many inputs")
    count: StrictInt = Field(5, ge=1, le=100, description="items asked for per call (topics, exercises, pairs, ...)")
    samples: StrictInt = Field(1, ge=1, le=1000, description="calls per input, each a distinct sample")
    personas: list[str] = Field(default_factory=list, description="rotated over calls, for diversity")
    operations: list[str] = Field(default_factory=lambda: list(EVOLUTIONS), description="evol_instruct only")
    template: str | None = Field(None, description="replaces the task's user prompt; {fields} are checked")
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: StrictInt = Field(1024, ge=1, le=1_000_000)
    repair: bool = Field(True, description="one follow-up call when a JSON reply does not parse")
    reasoning: bool | None = Field(
        None,
        description="answer only: true (the default) answers with chain of thought ending in '#### <final answer>'; "
        "false keeps the whole reply as the response",
    )

    @field_validator("task")
    @classmethod
    def prompt_task(cls, task: str) -> str:
        TASKS.check(task)
        if task not in PROMPT_TASKS:
            raise ValueError(
                f"task {task!r} runs inside the loop (synthloop run); generate runs {', '.join(PROMPT_TASKS)}"
            )
        return task

    @field_validator("operations")
    @classmethod
    def known_operations(cls, operations: list[str]) -> list[str]:
        for op in operations:
            if op not in EVOLUTIONS:
                raise ValueError(f"unknown operation {op!r}; choose from {', '.join(EVOLUTIONS)}")
        return operations

    @model_validator(mode="after")
    def one_source_and_a_valid_template(self) -> StepConfig:
        sources = [s for s in ("inputs", "inputs_file", "from_step") if getattr(self, s) is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of inputs, inputs_file or from")
        if self.template is not None:
            TASKS.get(self.task).check_template(self.template)
        if self.reasoning is not None and self.task != "answer":
            raise ValueError(f"step {self.name!r}: reasoning is for the answer task only")
        return self


class GenerateJob(Strict):
    name: Name
    seed: Seed = 0
    teacher: TeacherConfig = OracleTeacherConfig()
    steps: list[StepConfig] = Field(min_length=1)
    shard_size: StrictInt = Field(1000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def steps_chain(self) -> GenerateJob:
        if self.teacher.backend == "oracle":
            raise ValueError(
                "teacher: the oracle answers only skill problems; set teacher.backend to openai or transformers"
            )
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"steps: two steps are named {step.name!r}")
            if step.from_step is not None and step.from_step not in seen:
                raise ValueError(
                    f"step {step.name!r}: from {step.from_step!r} is not an earlier step ({', '.join(seen) or 'none'})"
                )
            seen.add(step.name)
        return self

    def hash(self) -> str:
        return identity_hash(self.model_dump(mode="json", by_alias=True))


def load_job(path: str | Path) -> GenerateJob:
    path = Path(path)
    data = read_yaml_file(path, "job")
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a job is a YAML mapping of keys (name, teacher, steps)")
    try:
        job = GenerateJob.model_validate(data)
    except ValidationError as err:
        raise RecipeError(f"{path}: {describe(first_error(err), GenerateJob)}") from None
    base = path.parent
    rows: dict[str, int] = {}  # most rows each step can make, to bound the next one
    for step in job.steps:  # input files are read now, so a bad one fails before any call
        if step.inputs_file is not None:
            inputs = len(read_inputs(base / step.inputs_file, TASKS.get(step.task).input_field))
        else:
            inputs = len(step.inputs) if step.inputs is not None else rows[step.from_step or ""]
        inputs = min(inputs, step.limit or inputs)
        per_input = step.samples * (len(step.operations) if step.task == "evol_instruct" else 1)
        calls = inputs * per_input
        if calls > MAX_STEP_CALLS:
            raise RecipeError(
                f"{path}: step {step.name!r} could make {calls:,} calls ({inputs:,} inputs x {per_input} each); "
                f"a step makes at most {MAX_STEP_CALLS:,}: set its limit, or fewer samples or operations"
            )
        rows[step.name] = calls * (step.count if TASKS.get(step.task).list_key else 1)
    return job


def read_inputs(path: Path, field: str) -> list[str]:
    if not path.is_file():
        raise RecipeError(f"inputs file not found: {path}")
    try:
        if path.suffix != ".jsonl":  # one input a line: split on newlines only, each line bounded
            return [text for text, _ in read_text_lines(path, "inputs file")]
        rows = read_jsonl_rows(path, "inputs file")
    except InputFileError as err:
        raise RecipeError(str(err)) from None
    for row, where in rows:
        if OVERSIZE in row:
            raise RecipeError(f"{where}: {row[OVERSIZE]}, over the {MAX_FIELD_BYTES}-byte cap on one field")
        if not isinstance(row.get(field), str):
            raise RecipeError(f"{where}: needs a string field {field!r}")
    return [row[field] for row, _ in rows]


@dataclass(frozen=True)
class Call:
    request: TeacherRequest
    item: str  # the input this call is about
    parent_id: str | None  # the row it came from (steps fed by an earlier step)


def step_task(step: StepConfig) -> PromptTask:
    if step.task == "answer" and step.reasoning is False:
        return PlainAnswerTask(template=step.template, count=step.count)
    return TASKS.get(step.task)(template=step.template, count=step.count)


def step_calls(step: StepConfig, task: PromptTask, inputs: list[tuple[str, str | None]]) -> list[Call]:
    sampling = SamplingParams(step.temperature, step.top_p, step.max_tokens)
    operations = step.operations if step.task == "evol_instruct" else [None]
    calls, n = [], 0
    for item, parent in inputs[: step.limit]:
        for operation in operations:
            for sample in range(step.samples):
                persona = step.personas[n % len(step.personas)] if step.personas else None
                n += 1
                calls.append(Call(task.build_request(item, sampling, sample, persona, operation), item, parent))
    return calls


def step_inputs(step: StepConfig, root: Path, base: Path) -> list[tuple[str, str | None]]:
    """(input text, parent row id) for every input of the step."""
    if step.inputs is not None:
        return [(x, None) for x in step.inputs]
    if step.inputs_file is not None:
        return [(x, None) for x in read_inputs(base / step.inputs_file, TASKS.get(step.task).input_field)]
    return [(r.question, r.id) for r in read_records(root / "steps" / step.from_step) if r.error is None and r.kept]


def run_job(
    job: GenerateJob,
    root: Path,
    base: Path,
    resume: bool = False,
    log=print,
    cache_path: Path | None = None,
    engine: str = "local",
    actors: int | None = None,
) -> dict[str, Any]:
    """Run every step of `job` in `root` (`base`: where relative input files are found); returns metrics.
    `engine="ray"` (Ray joined already): the calls go through `actors` Ray actors."""
    with holding_run_dir(root):  # a live job in it is named before anything is checked or paid for
        return run_steps(job, root, base, resume, log, cache_path, engine, actors)


def run_steps(
    job: GenerateJob,
    root: Path,
    base: Path,
    resume: bool,
    log,
    cache_path: Path | None,
    engine: str = "local",
    actors: int | None = None,
) -> dict[str, Any]:
    teacher = make_teacher(job.teacher, job.seed)
    check_engine(job.teacher, engine)  # a teacher that runs only on Ray, asked to run here
    check_teacher(teacher)  # unreachable server, unknown model: fail before anything is written
    manifest = open_manifest(root, "job", job.hash(), {"job": job.model_dump(mode="json", by_alias=True)}, resume)
    try:
        cache = ResponseCache(cache_path or root / "cache" / "responses.sqlite")
        teacher_engine = Engine(
            teacher, engine_settings(job.teacher), cache, manifest["run_id"], Progress("teacher", log=log)
        )
        if engine == "ray":
            from synthloop.runners.ray_generate import give_to_ray

            give_to_ray(teacher_engine, job.teacher, job.seed, actors, log)
        metrics: dict[str, Any] = {"steps": {}}
        rewritten: set[str] = set()
        for step in job.steps:
            out = root / "steps" / step.name
            if step.from_step in rewritten:
                reset(out)  # its inputs changed: the failed calls of the step it reads were tried again
            task = step_task(step)
            calls = step_calls(step, task, step_inputs(step, root, base))
            by_request = {id(c.request): c for c in calls}
            make = record_maker(job, step, task, teacher_engine, by_request)
            requests = [c.request for c in calls]
            # The rows it was made from: a step whose source step changed since (even in an earlier,
            # killed process) is made again; its unchanged calls come from the cache.
            inputs = ids_digest(root / "steps" / step.from_step) if step.from_step else None
            stats = generate(
                teacher_engine, task, requests, make, out, job.shard_size, retry_failed=resume, log=log, inputs=inputs
            )
            written = stats.pop("written")
            if written:
                rewritten.add(step.name)
            metrics["steps"][step.name] = stats
            repairs = stats.get("repair_calls", {}).get("issued", 0)
            made = (
                f"{stats['calls']['issued']} calls made"
                + (f" and {repairs} repair calls" if repairs else "")
                + f", {stats['calls']['cached']} cached"
                if written
                else "complete already: no call made now"  # its stats are those of the run that wrote it
            )
            log(
                f"step {step.name}: {stats['rows']} rows from {stats['requests']} requests "
                f"({made}, {stats['parse_failed']} unparsable kept as failed)"
            )
        spent = cache.spent(manifest["run_id"])
        metrics["total"] = {**spent.__dict__, "tokens": spent.tokens}
        write_json(root / "metrics.json", metrics)
        empty = [reason for step in job.steps if (reason := empty_step_reason(step.name, root / "steps" / step.name))]
        if empty:
            raise EmptyOutputError("; ".join(empty) + "; fix the cause and rerun with --resume")
        return metrics
    finally:
        unlock_run_dir(root)  # a process that dies gives it back anyway


def empty_step_reason(name: str, directory: Path) -> str | None:
    failed = unparsable = 0
    first = ""
    for row in iter_records(directory):  # stops at the first usable row
        if row.error is None and row.parse_status != "failed":
            return None
        failed += bool(row.error)
        first = first or (row.error or "")
        unparsable += row.parse_status == "failed"
    why = f"{failed} calls failed (first error: {' '.join(first.split())[:200]})" if failed else ""
    why = ", ".join(part for part in (why, f"{unparsable} replies unparsable" if unparsable else "") if part)
    return f"step {name} produced no usable rows ({why or 'no inputs'})"


def record_maker(job: GenerateJob, step: StepConfig, task: PromptTask, engine: Engine, by_request: dict[int, Call]):
    backend, model, job_hash = engine.teacher.backend, engine.teacher.model, job.hash()

    def make(answered: Answered) -> list[Record]:
        call = by_request[id(answered.request)]
        common = {
            "kind": task.kind,
            "skill": call.item,
            "source": "synthetic",
            "round": 1,
            "messages": list(answered.request.messages),
            "teacher_backend": backend,
            "teacher_model": model,
            "task": task.name,
            "template_version": task.template_version if step.template is None else f"{task.template_version}+custom",
            "recipe_hash": job_hash,
            "request_id": answered.request.key(backend, model),
            "parent_ids": [call.parent_id] if call.parent_id else [],
        }
        return task_rows(answered, common, call.item)

    return make


def dry_run_job(job: GenerateJob, base: Path, cache_path: Path | None) -> list[str]:
    cache = ResponseCache(cache_path) if cache_path and cache_path.exists() else None
    prices = engine_settings(job.teacher).prices
    backend, model = job.teacher.backend, job.teacher.model
    lines = [f"dry run of {job.name!r} with teacher {backend}:{model}; nothing is sent"]
    known: dict[str, int] = {}
    for step in job.steps:
        task = step_task(step)
        if step.from_step is None:
            inputs = step_inputs(step, Path("/nonexistent"), base)
            est = estimate([c.request for c in step_calls(step, task, inputs)], backend, model, prices, cache)
        else:  # inputs unknown until the earlier step runs: assume it yields `count` rows per call
            upstream = known[step.from_step]
            placeholder = [(f"input {i}", None) for i in range(min(upstream, 1000))]
            sample = estimate([c.request for c in step_calls(step, task, placeholder)], backend, model, prices, None)
            est = sample.scaled(max(1, upstream // max(1, len(placeholder))))
        known[step.name] = est.calls * (step.count if task.list_key else 1)
        lines.append(f"step {step.name} ({step.task}):" + (" (inputs estimated)" if step.from_step else ""))
        lines += [f"  {line}" for line in est.lines()]
    return lines
