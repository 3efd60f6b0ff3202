"""Scratch space on disk for stages that must see a whole stream: rows kept in order in a Parquet file
and compact state (hashes, group members, verdicts) in an SQLite file whose page cache is capped, so
a stage's memory is bounded by its batch, not by the number of rows.

Scratch lives in a temporary folder under the stage's `root` (the run's folder when there is one, the
system's temporary folder otherwise) and is removed when the stage is done with it, or by the next
run of the same command after a crash (`clear_scratch`)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from synthloop.records import SCHEMA, Record, from_table, to_table

SCRATCH_PREFIX = ".scratch-"
CACHE_KIB = 16 * 1024  # SQLite's page cache per scratch database: its whole share of memory
IN_MEMORY_ROWS = 4096  # a row spill holds this many rows in memory before writing them out


class Scratch:
    """A temporary folder for one stage; `close()` (or garbage collection) removes it."""

    def __init__(self, root: Path | None = None):
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=root, ignore_cleanup_errors=True)
        self.path = Path(self._dir.name)

    def database(self, name: str) -> sqlite3.Connection:
        """An SQLite file that needs no durability (it is scratch): no journal, no fsync, capped cache,
        sorts spilled to files beside it."""
        db = sqlite3.connect(self.path / f"{name}.sqlite", isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{CACHE_KIB}", "temp_store=FILE"):
            db.execute(f"PRAGMA {pragma}")
        return db

    def close(self) -> None:
        self._dir.cleanup()


def clear_scratch(root: Path) -> None:
    """Remove scratch folders a killed run left under `root`."""
    if root.is_dir():
        for leftover in root.glob(f"{SCRATCH_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)


class RowSpill:
    """Records appended in order and read back in the same order, once. Up to `IN_MEMORY_ROWS` stay in
    memory; beyond that they go to a Parquet file, a row group at a time."""

    def __init__(self, scratch: Scratch, name: str = "rows"):
        self.path = scratch.path / f"{name}.parquet"
        self.buffer: list[Record] = []
        self.writer: pq.ParquetWriter | None = None
        self.count = 0

    def append(self, record: Record) -> None:
        self.buffer.append(record)
        self.count += 1
        if len(self.buffer) >= IN_MEMORY_ROWS:
            self.writer = self.writer or pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
            self.writer.write_table(to_table(self.buffer))
            self.buffer = []

    def __iter__(self) -> Iterator[Record]:
        if self.writer is not None:
            self.writer.close()
            with pq.ParquetFile(self.path) as parquet:
                for group in range(parquet.num_row_groups):
                    yield from from_table(parquet.read_row_group(group))
        yield from self.buffer
        self.buffer = []
