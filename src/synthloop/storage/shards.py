"""Parquet shards of records, each written atomically, and a completion marker per directory.

A directory is complete only when its `_SUCCESS.json` exists and every shard it lists is there, with
its row count and SHA-256, and no other: the marker is written last, with the stage's counts, so a
resumed run trusts a finished directory and redoes an unfinished or damaged one (a deleted, truncated
or replaced shard), saying so.

A marker also holds a digest of its rows' ids (`ids`) and of the rows it was derived from (`inputs`):
a directory whose inputs have changed since it was written (its source was redone and came out
different, or failed calls were tried again) is redone too, while one whose source was redone into
the same rows is kept, whatever the round's status: the same rows in give the same rows out, so
redoing it would cost time and change nothing. Markers written before checksums existed are checked
by row count only (said once per process). A student checkpoint's marker lists its files' SHA-256."""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synthloop.records import Record, from_table, to_table
from synthloop.storage.atomic import atomic_write, read_json, write_json

MARKER = "_SUCCESS.json"
SHARDS = "shards"  # in the marker: each shard's rows and SHA-256
IDS, INPUTS = "ids", "inputs"  # in the marker: digests of its rows' ids and of what it was derived from
FILES = "files"  # in a checkpoint's marker: each file's SHA-256
_said_unverifiable: set[Path] = set()


def shard_path(directory: Path, shard: int) -> Path:
    return directory / f"part-{shard:05d}.parquet"


def write_shard(path: Path, records: list[Record]) -> None:
    write_table_shard(path, to_table(records))


def write_table_shard(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_records(directory: Path) -> list[Record]:
    """All records of a shard directory, in shard order."""
    return list(iter_records(directory))


def iter_records(directory: Path, batch_rows: int = 1024) -> Iterator[Record]:
    """The records of a shard directory in shard order, `batch_rows` at a time: a directory of any size
    is read with the memory of one batch."""
    for path in sorted(directory.glob("part-*.parquet")):
        yield from shard_file_rows(path, batch_rows)


def shard_file_rows(path: Path, batch_rows: int = 1024) -> Iterator[Record]:
    """The records of one shard, `batch_rows` at a time."""
    with pq.ParquetFile(path) as parquet:
        for batch in parquet_batches(parquet, batch_rows):
            yield from from_table(pa.Table.from_batches([batch]))


def parquet_batches(
    parquet: pq.ParquetFile, batch_rows: int, columns: list[str] | None = None, row_groups: list[int] | None = None
) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows (of `row_groups`, or all) `batch_rows` at a time, a reader per row group: one
    reader over a whole file of many row groups keeps memory as it goes (32 MB more every 1.2 million
    rows of bench/scale.py's file), a reader per row group does not."""
    for group in range(parquet.num_row_groups) if row_groups is None else row_groups:
        yield from parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns)


def shard_rows(directory: Path) -> int:
    """How many rows a shard directory holds, read from the shards' footers (0 for no directory)."""
    return rows_in(directory.glob("part-*.parquet"))


def rows_in(paths: Iterable[Path]) -> int:
    """How many rows these Parquet files hold, read from their footers."""
    total = 0
    for path in paths:
        with pq.ParquetFile(path) as parquet:
            total += parquet.metadata.num_rows
    return total


@dataclass(frozen=True)
class ShardSlice:
    """Consecutive shards of a `ShardFolders`, read by one task."""

    paths: tuple[Path, ...]
    rows: int


def grouped_shards(paths: Iterable[Path], rows_per_slice: int) -> list[ShardSlice]:
    """Consecutive shards grouped into slices of at least `rows_per_slice` rows (the last may hold
    fewer), their rows read from the footers."""
    out: list[ShardSlice] = []
    for path in paths:
        rows = rows_in([path])
        if out and out[-1].rows < rows_per_slice:
            out[-1] = ShardSlice((*out[-1].paths, path), out[-1].rows + rows)
        else:
            out.append(ShardSlice((path,), rows))
    return out


class ShardFolders:
    """The rows of shard folders (a run's own), in folder and shard order, each passed through `prepare`:
    iterated in this process, or on Ray read by read tasks where the files are, a slice of shards each
    (`slices`, `read_slice`), so that the driver reads none of them."""

    def __init__(self, folders: Iterable[Path], prepare: Callable[[Iterable[Record]], Iterator[Record]] | None = None):
        self.folders = list(folders)
        self.prepare = prepare

    def __iter__(self) -> Iterator[Record]:
        for folder in self.folders:
            yield from self.prepared(iter_records(folder))

    def prepared(self, rows: Iterable[Record]) -> Iterable[Record]:
        return rows if self.prepare is None else self.prepare(rows)

    def slices(self, rows_per_slice: int) -> list[ShardSlice]:
        """The shards grouped into slices of at least `rows_per_slice` rows (the last may hold fewer)."""
        paths = [path for folder in self.folders for path in sorted(folder.glob("part-*.parquet"))]
        return grouped_shards(paths, rows_per_slice)

    def read_slice(self, piece: ShardSlice) -> tuple[list[Record], int]:
        """A slice's records, prepared, and how many there are."""
        records = list(self.prepared(row for path in piece.paths for row in shard_file_rows(path)))
        return records, len(records)

    def counted(self, rows: int, answered: int) -> None:
        """What the read tasks counted (nothing to check: the run wrote these shards)."""


class ShardWriter:
    """Records appended one at a time, converted a batch at a time and written by a `TableShardWriter`:
    shards of `shard_size` rows as each fills. `close` writes the last (or one empty shard when there was
    no record) and returns how many rows were written. `shards` and `rows`: what a resumed directory
    already holds, written on after."""

    def __init__(self, directory: Path, shard_size: int, shards: int = 0, rows: int = 0):
        self.tables = TableShardWriter(directory, shard_size, shards, rows)
        self.buffer: list[Record] = []
        self.batch = min(shard_size, 4096)

    @property
    def rows(self) -> int:
        return self.tables.rows + len(self.buffer)

    @property
    def shards(self) -> int:
        return self.tables.shards

    def append(self, record: Record) -> None:
        self.buffer.append(record)
        if len(self.buffer) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.tables.append(to_table(self.buffer))
            self.buffer = []

    def checkpoint(self) -> None:
        """Write every row appended so far, the last shard short if need be."""
        self.flush()
        self.tables.checkpoint()

    def close(self) -> int:
        self.flush()
        return self.tables.close()


def write_records(directory: Path, records: list[Record], shard_size: int) -> None:
    """Write `records` as shards of at most `shard_size` rows (one empty shard for no records)."""
    for shard, start in enumerate(range(0, max(1, len(records)), shard_size)):
        write_shard(shard_path(directory, shard), records[start : start + shard_size])


class TableShardWriter:
    """`ShardWriter` for Arrow tables of records (the record schema): the same shards, row for row."""

    def __init__(self, directory: Path, shard_size: int, shards: int = 0, rows: int = 0):
        self.directory, self.shard_size = directory, shard_size
        self.buffer: list[pa.Table] = []
        self.buffered, self.shards, self.rows = 0, shards, rows

    def append(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.buffered += table.num_rows
        self.rows += table.num_rows
        while self.buffered >= self.shard_size:
            whole = pa.concat_tables(self.buffer)
            self.write(whole.slice(0, self.shard_size))
            rest = whole.slice(self.shard_size)
            self.buffer, self.buffered = [rest], rest.num_rows

    def write(self, table: pa.Table) -> None:
        table = table.combine_chunks()
        atomic_write(
            shard_path(self.directory, self.shards), lambda tmp: pq.write_table(table, tmp, compression="zstd")
        )
        self.shards += 1

    def checkpoint(self) -> None:
        if self.buffered:
            self.write(pa.concat_tables(self.buffer))
            self.buffer, self.buffered = [], 0

    def close(self) -> int:
        if self.buffered or not self.shards:
            self.write(pa.concat_tables(self.buffer) if self.buffer else to_table([]))
        return self.rows


def is_complete(directory: Path, inputs: str | None = None) -> bool:
    """Whether `directory` was finished, is intact, and (given `inputs`, the digest of what it is derived
    from) was derived from the same rows; if not, say why on stderr (the caller redoes it)."""
    if not (directory / MARKER).exists():
        return False
    marker = marker_or_none(directory)
    problem = f"its {MARKER} cannot be read" if marker is None else damage(directory, marker)
    recorded = marker.get(INPUTS) if marker else None
    if problem is None and inputs is not None and recorded is not None and recorded != inputs:
        problem = "derived from rows that have changed since"
    if problem:
        print(f"synthloop: {directory}: {problem}; redoing it", file=sys.stderr, flush=True)
    return problem is None


def mark_complete(directory: Path, stats: dict[str, Any], inputs: str | None = None) -> None:
    marker = {**stats, SHARDS: shard_digests(directory), IDS: digest(row_ids(directory))}
    if inputs is not None:
        marker[INPUTS] = inputs
    write_json(directory / MARKER, marker)


def read_marker(directory: Path) -> dict[str, Any]:
    marker = read_json(directory / MARKER)
    for key in (SHARDS, IDS, INPUTS):
        marker.pop(key, None)
    return marker


def ids_digest(directory: Path) -> str:
    """The digest of a complete directory's row ids, in order (what derived directories record)."""
    recorded = read_json(directory / MARKER).get(IDS)
    return recorded if recorded is not None else digest(row_ids(directory))


def row_ids(directory: Path) -> Iterator[str]:
    """The ids of a directory's rows in order, read one shard's id column at a time."""
    for path in sorted(directory.glob("part-*.parquet")):
        with pq.ParquetFile(path) as parquet:  # not pq.read_table: its per-call state grew RSS by 58 kB a shard
            yield from parquet.read(columns=["id"])["id"].to_pylist()


def digest(parts: Iterable[str]) -> str:
    """SHA-256 of the parts joined by newlines, computed as they come (millions of ids, no joined copy)."""
    hashed = hashlib.sha256()
    for index, part in enumerate(parts):
        hashed.update(b"\n" + part.encode() if index else part.encode())
    return hashed.hexdigest()


def shard_digests(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        path.name: {"rows": pq.ParquetFile(path).metadata.num_rows, "sha256": file_sha256(path)}
        for path in sorted(directory.glob("part-*.parquet"))
    }


def marker_or_none(directory: Path) -> dict[str, Any] | None:
    """A directory's marker, or None where it cannot be read (damaged: the directory is redone)."""
    try:
        marker = read_json(directory / MARKER)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def damage(directory: Path, marker: dict[str, Any]) -> str | None:
    """What is wrong with a marked directory's shards, or None."""
    listed = marker.get(SHARDS)
    if listed is None:
        return row_count_damage(directory, marker)
    present = {path.name for path in directory.glob("part-*.parquet")}
    if missing := sorted(set(listed) - present):
        return f"{', '.join(missing)} missing ({sum(listed[m]['rows'] for m in missing)} rows)"
    if extra := sorted(present - set(listed)):
        return f"{', '.join(extra)} not written by this run"
    if changed := [name for name in sorted(listed) if file_sha256(directory / name) != listed[name]["sha256"]]:
        return f"{', '.join(changed)} truncated or changed since it was written (checksum differs)"
    return None


def row_count_damage(directory: Path, marker: dict[str, Any]) -> str | None:
    """A marker from before checksums: its shards must at least be readable and hold the rows it counted."""
    if directory.parent.parent not in _said_unverifiable:
        _said_unverifiable.add(directory.parent.parent)
        print(
            f"synthloop: {directory.parent.parent}: markers written before checksums existed; "
            "their shards are checked by row count only",
            file=sys.stderr,
            flush=True,
        )
    expected = marker.get("rows", marker.get("kept"))
    try:
        found = shard_rows(directory)
    except (OSError, ValueError) as err:  # pyarrow's errors for an unreadable footer
        return f"a shard cannot be read ({' '.join(str(err).split())[:200]})"
    if isinstance(expected, int) and found != expected:
        return f"{found} rows where its marker counted {expected}"
    return None


def file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file of a directory that is not made of shards (a student checkpoint)."""
    return {p.name: file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name != MARKER}


def files_damage(directory: Path, listed: dict[str, str]) -> str | None:
    if missing := sorted(name for name in listed if not (directory / name).is_file()):
        return f"{', '.join(missing)} missing"
    if changed := [name for name in sorted(listed) if file_sha256(directory / name) != listed[name]]:
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
