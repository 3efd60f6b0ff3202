"""Answer a batch of teacher requests through the engine, parse every sample, repair what does not
parse (one bounded follow-up call), and write the records as Parquet shards.

Resumable twice over. The directory is checkpointed after each chunk answered (CHUNK_REQUESTS here, a
Ray batch on Ray) once a shard's worth of rows has come (`progress.json`: the requests answered, the
shards that hold their rows and their checksums), so a killed run goes on after the last checkpoint;
and the response cache holds every answer that arrived, so the calls after the checkpoint are not
paid again either. The directory is marked complete only once every request is answered or kept as
failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.records import Record
from synthloop.storage.atomic import read_json, write_json
from synthloop.storage.shards import (
    MARKER,
    ShardWriter,
    digest,
    file_sha256,
    is_complete,
    mark_complete,
    read_marker,
    reset,
    rows_in,
    shard_path,
)
from synthloop.tasks.base import Parsed, Task, repair_request
from synthloop.teachers.base import TeacherRequest, TeacherResponse
from synthloop.teachers.engine import BudgetExhausted, Engine, EngineReport


@dataclass(frozen=True)
class Sample:
    """One sample of one call, parsed. `status`: schema | parsed | repaired | failed."""

    text: str
    parsed: Parsed
    status: str
    repair_text: str | None = None


@dataclass
class Answered:
    request: TeacherRequest
    response: TeacherResponse
    samples: list[Sample] = field(default_factory=list)  # empty when the call failed


MakeRecords = Callable[[Answered], list[Record]]
CHUNK_REQUESTS = 16_384  # requests answered, parsed and written at a time: a round's memory is one chunk's
PROGRESS = "progress.json"  # an unfinished directory's checkpoint: requests answered, shards written


def run_engine(engine: Engine, requests: Sequence[TeacherRequest]) -> tuple[list[TeacherResponse | None], EngineReport]:
    async def go() -> tuple[list[TeacherResponse | None], EngineReport]:
        try:
            return await engine.run(requests)
        finally:
            await engine.teacher.aclose()

    return asyncio.run(go())


def answer_and_parse(
    engine: Engine, task: Task, requests: Sequence[TeacherRequest], repair: bool = True
) -> tuple[list[Answered], dict[str, Any]]:
    """Every request answered (or failed), every sample parsed; raises `BudgetExhausted` if a cap
    stopped the engine (what was answered is already in the cache)."""
    responses, report = run_engine(engine, requests)
    stats: dict[str, Any] = {"calls": report.as_dict()}
    if report.stopped:
        raise BudgetExhausted(report.stopped)
    enforced = engine.teacher.supports_response_schema
    answered: list[Answered] = []
    to_repair: list[tuple[Answered, int, TeacherRequest]] = []
    for request, response in zip(requests, responses, strict=True):
        entry = Answered(request, response)
        for j, text in enumerate(response.texts or ()):
            parsed = task.parse(text)
            status = "failed" if parsed.failure else ("schema" if enforced and request.response_schema else "parsed")
            entry.samples.append(Sample(text, parsed, status))
            if parsed.failure and repair and task.schema is not None:
                to_repair.append((entry, j, repair_request(request, text, parsed.failure, task.schema)))
        answered.append(entry)
    if to_repair:
        fixes, repair_report = run_engine(engine, [r for _, _, r in to_repair])
        stats["repair_calls"] = repair_report.as_dict()
        if repair_report.stopped:
            raise BudgetExhausted(repair_report.stopped)
        repaired = 0
        for (entry, j, _), fix in zip(to_repair, fixes, strict=True):
            first = entry.samples[j]
            if fix is None or fix.text is None:
                why = f"{first.parsed.failure}; the repair call failed ({fix.error if fix else 'not sent'})"
                entry.samples[j] = Sample(first.text, Parsed(first.parsed.items, why), "failed")
                continue
            again = task.parse(fix.text)
            if again.failure:
                why = f"{first.parsed.failure}; after one repair: {again.failure}"
                entry.samples[j] = Sample(first.text, Parsed(first.parsed.items, why), "failed", fix.text)
            else:
                entry.samples[j] = Sample(first.text, again, "repaired", fix.text)
                repaired += 1
        stats["repaired"] = repaired
    stats["parse_failed"] = sum(s.status == "failed" for a in answered for s in a.samples)
    return answered, stats


def generate(
    engine: Engine,
    task: Task,
    requests: Sequence[TeacherRequest],
    make_records: MakeRecords,
    out_dir: Path,
    shard_size: int,
    retry_failed: bool = False,
    log: Callable[[str], None] = print,
    inputs: str | None = None,
) -> dict[str, Any]:
    """Answer `requests` into `out_dir/part-*.parquet`; returns the stats. A complete directory is
    skipped, unless `retry_failed` (a resumed step) and some of its calls or repair calls failed: then
    it is written again, the answers already received coming from the response cache and the failed
    calls sent again. `written` in the stats says whether the directory was (re)written now. `inputs`: the digest
    of the rows the requests were made from (a step fed by an earlier one), recorded in the marker: a
    directory made from other rows is redone."""
    marked = (out_dir / MARKER).exists()
    complete = is_complete(out_dir, inputs)
    damaged = marked and not complete  # finished once, damaged since: its answers should all be cached
    if complete:
        stats = read_marker(out_dir)
        failed = sum(stats.get(calls, {}).get("failed", 0) for calls in ("calls", "repair_calls"))  # repairs too
        if not (retry_failed and failed):
            return stats | {"written": False}
        log(f"resume: {failed} calls failed last time in {out_dir}; trying them again")
    key = digest([inputs or "", str(shard_size), *(engine.key(r) for r in requests)])
    done = written_so_far(out_dir, key, len(requests)) if not marked else None
    if done is None:
        reset(out_dir)
        done = {"requests": 0, "shards": 0, "rows": 0, "stats": {}, "sha256": {}}
    else:
        log(f"resume: {done['requests']} of {len(requests)} requests already written in {out_dir}; going on")
    writer = ShardWriter(out_dir, shard_size, done["shards"], done["rows"])
    stats, answered_so_far, saved, checksums = done["stats"], done["requests"], done["rows"], done["sha256"]
    start = time.perf_counter()
    try:
        for answered, chunk_stats in answered_chunks(engine, task, requests[answered_so_far:]):
            for entry in answered:
                for row in make_records(entry):
                    writer.append(row)
            stats, answered_so_far = summed(stats, chunk_stats), answered_so_far + len(answered)
            if writer.rows - saved >= shard_size and answered_so_far < len(requests):
                writer.checkpoint()  # a kill from here on resumes after these requests
                saved = writer.rows
                for shard in range(len(checksums), writer.shards):  # each shard read once, when first saved
                    checksums[shard_path(out_dir, shard).name] = file_sha256(shard_path(out_dir, shard))
                progress = {"key": key, "requests": answered_so_far, "shards": writer.shards, "rows": saved}
                write_json(out_dir / PROGRESS, progress | {"sha256": checksums, "stats": stats})
    except BudgetExhausted as err:
        if not damaged:
            raise
        raise BudgetExhausted(
            f"{out_dir} was damaged and the response cache no longer holds all its answers, so redoing it "
            f"needs new calls, but {err}"
        ) from None
    rows = writer.close()
    (out_dir / PROGRESS).unlink(missing_ok=True)
    stats.setdefault("calls", {})["seconds"] = round(time.perf_counter() - start, 6)  # wall time (Ray overlaps)
    stats |= {"requests": len(requests), "rows": rows, "seconds": stats["calls"]["seconds"]}
    mark_complete(out_dir, stats, inputs)
    return stats | {"written": True}


def written_so_far(out_dir: Path, key: str, requests: int) -> dict[str, Any] | None:
    """What an unfinished directory holds for these very requests (its progress file says how many were
    answered, and which shards with which checksums hold their rows), with shards written after that
    removed; None (start over) where there is no progress file, or one for other requests, or one that
    does not match its shards."""
    try:
        progress = read_json(out_dir / PROGRESS)
        shards, rows, done, checksums = progress["shards"], progress["rows"], progress["requests"], progress["sha256"]
        if progress["key"] != key or not isinstance(progress["stats"], dict) or not isinstance(checksums, dict):
            return None
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not all(type(n) is int for n in (shards, rows, done)) or not (0 < done < requests and shards > 0):
        return None
    kept = [shard_path(out_dir, shard) for shard in range(shards)]
    if sorted(checksums) != [path.name for path in kept] or not isinstance(progress["stats"].get("calls", {}), dict):
        return None
    try:
        if any(file_sha256(path) != checksums[path.name] for path in kept) or rows_in(kept) != rows:
            return None  # a shard changed since: what it holds is not what was answered
    except (OSError, ValueError):  # a shard missing or unreadable
        return None
    for path in out_dir.glob("part-*.parquet"):
        if path not in kept:  # written after the last checkpoint
            path.unlink()
    return progress


def answered_chunks(
    engine: Engine, task: Task, requests: Sequence[TeacherRequest]
) -> Iterator[tuple[list[Answered], dict[str, Any]]]:
    """The requests answered and parsed a chunk at a time, in order: in this process, by Ray actors when
    the engine was given to Ray (`engine.on_ray`), or by vLLM on the cluster's GPUs."""
    if engine.on_ray is not None:
        from synthloop.runners.ray_generate import answer_on_ray
        from synthloop.runners.ray_vllm import VLLMOnRay, answer_with_vllm

        if isinstance(engine.on_ray, VLLMOnRay):  # vLLM on the cluster's GPUs: a batch pass into the cache first
            yield from answer_with_vllm(engine, task, requests, CHUNK_REQUESTS)
        else:
            yield from answer_on_ray(engine.on_ray, task, requests)
        return
    for start in range(0, max(1, len(requests)), CHUNK_REQUESTS):
        yield answer_and_parse(engine, task, requests[start : start + CHUNK_REQUESTS])


def summed(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Two chunks' stats as one: numbers added, counts by key merged, anything else the latest."""
    out = dict(total)
    for key, value in part.items():
        before = out.get(key)
        if isinstance(value, dict):
            out[key] = summed(before if isinstance(before, dict) else {}, value)
        elif isinstance(value, int | float) and not isinstance(value, bool) and isinstance(before, int | float):
            out[key] = before + value
        elif value is not None or key not in out:
            out[key] = value
    return out


def usage_fields(answered: Answered, first: bool) -> dict[str, Any]:
    """The call's usage for the call's first row, zeros after it, so summing rows gives the total."""
    r = answered.response
    return {
        "prompt_tokens": r.prompt_tokens if first else 0,
        "completion_tokens": r.completion_tokens if first else 0,
        "attempts": r.attempts,
    }


def solution_rows(answered: Answered, common: dict[str, Any]) -> list[Record]:
    """A `solve` call's rows: one per sample, its reasoning and final answer parsed (None where the
    sample has no answer), or one row with the error where the call failed after its retries."""
    if not answered.samples:
        return [Record(**common, error=answered.response.error, **usage_fields(answered, True))]
    rows = []
    for j, sample in enumerate(answered.samples):
        item = sample.parsed.items[0] if sample.parsed.items else None
        rows.append(
            Record(
                **common,
                reasoning=item.reasoning if item else "",
                answer=None if sample.parsed.failure or item is None else item.answer,
                raw_output=sample.text,
                sample_index=j,
                parse_status=sample.status,
                **usage_fields(answered, j == 0),
            )
        )
    return rows


def task_rows(answered: Answered, common: dict[str, Any], question: str) -> list[Record]:
    """A prompt task call's rows: one per item of every sample (`question` where an item has none of its own),
    a row with the parse failure for a sample that does not parse, or one row with the error where the call
    failed after its retries."""
    if not answered.samples:
        return [Record(**common, question=question, error=answered.response.error, **usage_fields(answered, True))]
    rows: list[Record] = []
    for sample in answered.samples:
        if sample.parsed.failure:
            rows.append(
                Record(
                    **common,
                    question=question,
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
                    question=item.question or question,
                    reasoning=item.reasoning,
                    answer=item.answer,
                    raw_output=sample.repair_text or sample.text,
                    parse_status=sample.status,
                    sample_index=len(rows),
                    **usage_fields(answered, not rows),
                )
            )
    return rows
