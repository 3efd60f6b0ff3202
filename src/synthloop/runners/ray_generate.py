"""Teacher calls on Ray Data: the requests of a step are a dataset, answered by a pool of actors, each
with its own engine (the recipe's retries, timeouts and rate limits) and connections, a share of the
teacher's `concurrency`, and the run's response cache. Ray Data feeds the actors with back-pressure and
hands the answers back in request order, so the rows written are those the local engine writes.

A call answered before a crash is in the response cache and is never paid again: a killed actor's
batch is retried by Ray and its finished calls come from the cache; a killed run resumed with
`--resume` does the same. The budget caps are checked by every actor against the cache's running
total, so a run may pass a cap by the calls in flight (at most `concurrency`)."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from synthloop.config import EngineFields, StudentTeacherConfig, TransformersTeacherConfig, VLLMTeacherConfig
from synthloop.tasks.base import Task
from synthloop.teachers.base import TeacherRequest
from synthloop.teachers.engine import BudgetExhausted

BATCH_REQUESTS = 1024  # requests an actor answers at a time at most (its unit of retry)


@dataclass
class RayTeachers:
    """How an engine's calls go through Ray: the teacher to build in each of `actors` actors."""

    teacher: EngineFields
    seed: int
    actors: int
    cache_path: str | None
    run_id: str


def give_to_ray(engine: Any, cfg: EngineFields, seed: int, actors: int | None, log: Any = print) -> None:
    """Send `engine`'s calls through Ray actors (`actors`, default: one per CPU of the cluster) when its
    teacher can live in an actor; a local model stays in this process, which is said."""
    import ray

    if isinstance(cfg, VLLMTeacherConfig):
        from synthloop.runners.ray_vllm import give_vllm_to_ray

        give_vllm_to_ray(engine, cfg, log)
        return
    if not can_run_on_ray(cfg):
        log(f"teacher: {cfg.backend} runs in this process (a local model is not copied to Ray actors)")
        return
    count = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    in_flight = engine.settings.concurrency
    if count > in_flight:  # an actor has at least one call in flight: more would pass the recipe's total
        log(f"teacher: {count} actors asked, {in_flight} used (teacher.concurrency is {in_flight})")
        count = in_flight
    cache = str(engine.cache.path) if engine.cache else None
    engine.on_ray = RayTeachers(cfg, seed, count, cache, engine.run_id)


def engine_concurrency(teachers: RayTeachers) -> int:
    from synthloop.teachers.factory import engine_settings

    return engine_settings(teachers.teacher).concurrency


def can_run_on_ray(cfg: EngineFields) -> bool:
    """Teachers a Ray actor can hold: a server's client or the built-in ones; a local model (a student, a
    transformers checkpoint) stays in this process."""
    return not isinstance(cfg, StudentTeacherConfig | TransformersTeacherConfig)


class TeacherCalls:
    """A Ray Data actor: an engine of its own answers each batch of requests (parsed and repaired)."""

    def __init__(self, teachers: RayTeachers, task: Task):
        from synthloop.storage.response_cache import ResponseCache
        from synthloop.teachers.engine import Engine
        from synthloop.teachers.factory import engine_settings, make_teacher

        settings = engine_settings(teachers.teacher)  # each actor's share: the total in flight stays the recipe's
        settings = replace(settings, concurrency=max(1, math.ceil(settings.concurrency / teachers.actors)))
        cache = ResponseCache(Path(teachers.cache_path)) if teachers.cache_path else None
        self.engine = Engine(make_teacher(teachers.teacher, teachers.seed), settings, cache, teachers.run_id)
        self.task = task

    def __call__(self, table: pa.Table) -> pa.Table:
        from synthloop.runners.local import answer_and_parse

        requests = [pickle.loads(blob) for blob in table.column("request").to_pylist()]
        try:
            answered, stats = answer_and_parse(self.engine, self.task, requests)
        except BudgetExhausted as err:  # said to the driver, which stops the run cleanly
            return pa.table({"index": table.column("index"), "answer": pa.nulls(table.num_rows, pa.binary()),
                             "stats": pa.array([json.dumps({"stopped": str(err)})] * table.num_rows)})  # fmt: skip
        answers = [pickle.dumps((entry.response, entry.samples)) for entry in answered]
        stats_column = [json.dumps(stats)] + [None] * (len(answers) - 1)
        return pa.table({"index": table.column("index"), "answer": pa.array(answers, pa.binary()),
                         "stats": pa.array(stats_column, pa.string())})  # fmt: skip


def answer_on_ray(
    teachers: RayTeachers, task: Task, requests: Sequence[TeacherRequest]
) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """(answered, stats) per batch of requests, in request order; raises `BudgetExhausted` when a cap
    stopped an actor."""
    import ray

    from synthloop.runners.local import Answered, summed

    if not requests:
        return
    # Batches: enough of them to keep every actor busy, each long enough (8 calls per slot in flight) that
    # the few calls still running at its end cost little.
    in_flight = max(1, math.ceil(engine_concurrency(teachers) / teachers.actors))
    size = min(BATCH_REQUESTS, max(8 * in_flight, math.ceil(len(requests) / (4 * teachers.actors))))
    blocks = [  # one block per batch: each goes to whichever actor is free
        pa.table({"index": pa.array(range(start, min(start + size, len(requests))), pa.int64()),
                  "request": pa.array([pickle.dumps(r) for r in requests[start : start + size]])})
        for start in range(0, len(requests), size)
    ]  # fmt: skip
    ds = ray.data.from_arrow(blocks).map_batches(
        TeacherCalls,
        fn_constructor_args=(teachers, task),
        batch_size=size,
        batch_format="pyarrow",
        concurrency=min(teachers.actors, len(blocks)),  # no actor started for a batch that is not there
        num_cpus=0.25,  # the actors wait on the network: several share a CPU
        # on the head node, with the run's response cache (SQLite, which must not be shared over a
        # network file system); they only wait on the network, so one node holds many
        resources={"node:__internal_head__": 0.001},
        # an actor that dies is started again and its batch retried: Ray Data's own default for an actor
        # pool (max_restarts=-1, max_task_retries=-1), so it is not passed (those extra arguments are
        # deprecated in Ray 2.60 and go in 2.64)
    )
    for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        stats: dict[str, Any] = {}
        answered = []
        for index, blob, said in zip(*(table.column(c).to_pylist() for c in ("index", "answer", "stats")), strict=True):
            if said is not None:
                part = json.loads(said)
                if "stopped" in part:
                    raise BudgetExhausted(part["stopped"])
                stats = summed(stats, part)
            response, samples = pickle.loads(blob)
            answered.append(Answered(requests[index], response, samples))
        yield answered, stats
