"""Parquet shards of records, each written atomically, and a completion marker per directory.

A directory is complete only when its `_SUCCESS.json` exists; it is written last, with the stage's
counts, so a resumed run trusts a finished directory and redoes an unfinished one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from synthloop.records import Record, from_table, to_table
from synthloop.storage.atomic import atomic_write, read_json, write_json

MARKER = "_SUCCESS.json"


def shard_path(directory: Path, shard: int) -> Path:
    return directory / f"part-{shard:05d}.parquet"


def write_shard(path: Path, records: list[Record]) -> None:
    table = to_table(records)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_records(directory: Path) -> list[Record]:
    """All records of a shard directory, in shard order."""
    records: list[Record] = []
    for path in sorted(directory.glob("part-*.parquet")):
        records.extend(from_table(pq.read_table(path)))
    return records


def write_records(directory: Path, records: list[Record], shard_size: int) -> None:
    """Write `records` as shards of at most `shard_size` rows (one empty shard for no records)."""
    for shard, start in enumerate(range(0, max(1, len(records)), shard_size)):
        write_shard(shard_path(directory, shard), records[start : start + shard_size])


def is_complete(directory: Path) -> bool:
    return (directory / MARKER).exists()


def mark_complete(directory: Path, stats: dict[str, Any]) -> None:
    write_json(directory / MARKER, stats)


def read_marker(directory: Path) -> dict[str, Any]:
    return read_json(directory / MARKER)


def reset(directory: Path) -> None:
    """Remove an unfinished directory so its stage starts clean."""
    if directory.exists():
        shutil.rmtree(directory)
