"""Parquet shards of records, each written atomically, and a completion marker per directory.

A directory is complete only when its `_SUCCESS.json` exists and every shard it lists is there, with
its row count and SHA-256, and no other: the marker is written last, with the stage's counts, so a
resumed run trusts a finished directory and redoes an unfinished or damaged one (a deleted, truncated
or replaced shard), saying so. Markers written before checksums existed are trusted as before."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from synthloop.records import Record, from_table, to_table
from synthloop.storage.atomic import atomic_write, read_json, write_json

MARKER = "_SUCCESS.json"
SHARDS = "shards"  # in the marker: each shard's rows and SHA-256


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
    if not (directory / MARKER).exists():
        return False
    problem = damage(directory)
    if problem:
        print(f"synthloop: {directory}: {problem}; redoing it", file=sys.stderr, flush=True)
    return problem is None


def mark_complete(directory: Path, stats: dict[str, Any]) -> None:
    write_json(directory / MARKER, {**stats, SHARDS: shard_digests(directory)})


def read_marker(directory: Path) -> dict[str, Any]:
    marker = read_json(directory / MARKER)
    marker.pop(SHARDS, None)
    return marker


def shard_digests(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        path.name: {"rows": pq.ParquetFile(path).metadata.num_rows, "sha256": file_sha256(path)}
        for path in sorted(directory.glob("part-*.parquet"))
    }


def damage(directory: Path) -> str | None:
    """What is wrong with a marked directory's shards, or None."""
    listed = read_json(directory / MARKER).get(SHARDS)
    if listed is None:
        return None  # marked before checksums existed
    present = {path.name for path in directory.glob("part-*.parquet")}
    if missing := sorted(set(listed) - present):
        return f"{', '.join(missing)} missing ({sum(listed[m]['rows'] for m in missing)} rows)"
    if extra := sorted(present - set(listed)):
        return f"{', '.join(extra)} not written by this run"
    if changed := [name for name in sorted(listed) if file_sha256(directory / name) != listed[name]["sha256"]]:
        return f"{', '.join(changed)} truncated or changed since it was written (checksum differs)"
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def reset(directory: Path) -> None:
    """Remove an unfinished directory (or a stage's file) so its stage starts clean."""
    if directory.is_dir() and not directory.is_symlink():
        shutil.rmtree(directory)
    elif directory.exists() or directory.is_symlink():
        directory.unlink()
