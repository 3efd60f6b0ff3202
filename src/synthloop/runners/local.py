"""Generate records shard by shard. A shard is written atomically once all its calls are answered
(or kept as failed); on resume, shards already on disk are skipped, so no call is made twice for
them and no row is duplicated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from synthloop.records import Record
from synthloop.storage.shards import is_complete, mark_complete, read_marker, shard_path, write_shard
from synthloop.teachers.base import Teacher, TeacherRequest, TeacherResponse
from synthloop.teachers.engine import run_requests

MakeRecord = Callable[[TeacherRequest, TeacherResponse], Record]


def generate_shards(
    requests: Sequence[TeacherRequest],
    teacher: Teacher,
    make_record: MakeRecord,
    out_dir: Path,
    shard_size: int,
    concurrency: int,
    max_retries: int,
) -> dict[str, float]:
    """Answer every request into `out_dir/part-*.parquet`; returns the marker's stats."""
    if is_complete(out_dir):
        return read_marker(out_dir)
    start, calls = time.perf_counter(), 0
    for shard, first in enumerate(range(0, max(1, len(requests)), shard_size)):
        path = shard_path(out_dir, shard)
        if path.exists():
            continue
        batch = list(requests[first : first + shard_size])
        responses = asyncio.run(run_requests(teacher, batch, concurrency, max_retries))
        calls += len(batch)
        write_shard(path, [make_record(q, r) for q, r in zip(batch, responses, strict=True)])
    stats = {"requests": len(requests), "calls_this_session": calls, "seconds": round(time.perf_counter() - start, 3)}
    mark_complete(out_dir, stats)
    return stats
