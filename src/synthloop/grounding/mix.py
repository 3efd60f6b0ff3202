"""Mix synthetic rows with the golden set at a fixed ratio, shuffled on disk so a mix of any size is
written with the memory of one bucket.

`ratio` is the golden share of the mix. A small golden set is repeated to reach its share (each
repeat is the same row, same id: its provenance does not change), and every row keeps its
`source` label, so the training set always says which rows are human and which are synthetic.

The shuffle is the two-pass one: each row goes into one of several buckets at random (a Parquet file
in scratch once more than a few thousand rows wait), then each bucket is read back and shuffled whole,
bucket after bucket. Random buckets and a uniform shuffle within each give a uniform shuffle of the
whole mix."""

from __future__ import annotations

import contextlib
import random
import resource
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthloop.records import SCHEMA, Record, from_table, to_table
from synthloop.storage.spill import Scratch

BUCKET_ROWS = 20_000  # rows one bucket holds at most on average: what the second pass has in memory
WAITING_ROWS = 8192  # rows held in memory over all buckets before they are written to the buckets' files
SPARE_FILES = 256  # open files left for everything else while every bucket's file is open


def bucket_count(rows_at_most: int) -> int:
    """Buckets of BUCKET_ROWS rows, each an open file while the rows are dealt: the process's limit on
    open files is raised to its hard limit where that is needed, and where even that is too low the
    buckets grow instead (fewer of them, more rows each)."""
    wanted = max(1, -(-rows_at_most // BUCKET_ROWS))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted + SPARE_FILES:
        raised = wanted + SPARE_FILES if hard == resource.RLIM_INFINITY else min(hard, wanted + SPARE_FILES)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return wanted if soft == resource.RLIM_INFINITY else max(1, min(wanted, soft - SPARE_FILES))


def golden_count(n_synthetic: int, ratio: float) -> int:
    return round(n_synthetic * ratio / (1.0 - ratio)) if ratio > 0 else 0


def golden_draws(golden: list[Record], want: int, rng: random.Random) -> Iterator[Record]:
    """`want` golden rows: the whole set in a shuffled order, again and again, the last pass cut short."""
    while want > 0 and golden:
        pool = golden[:]
        rng.shuffle(pool)
        yield from pool[:want]
        want -= len(pool)


class ShuffledMix:
    """Rows added one at a time, read back as Arrow tables in a uniformly shuffled order."""

    def __init__(self, rows_at_most: int, seed: int, scratch_root: Path | None = None):
        self.rng = random.Random(seed)
        self.buckets = bucket_count(rows_at_most)
        self.waiting: list[list[Record]] = [[] for _ in range(self.buckets)]
        self.held = self.rows = 0
        self.scratch_root, self.scratch = scratch_root, None
        self.writers: dict[int, tuple[Path, pq.ParquetWriter]] = {}

    def add(self, row: Record) -> None:
        self.waiting[self.rng.randrange(self.buckets)].append(row)
        self.held += 1
        self.rows += 1
        if self.held >= WAITING_ROWS and self.buckets > 1:
            self.spill()

    def spill(self) -> None:
        self.scratch = self.scratch or Scratch(self.scratch_root)
        for bucket, rows in enumerate(self.waiting):
            if rows:
                if bucket not in self.writers:
                    path = self.scratch.path / f"bucket-{bucket:05d}.parquet"
                    self.writers[bucket] = path, pq.ParquetWriter(path, SCHEMA, compression="zstd")
                self.writers[bucket][1].write_table(to_table(rows))
        self.waiting = [[] for _ in range(self.buckets)]
        self.held = 0

    def tables(self) -> Iterator[pa.Table]:
        """Each bucket in turn, shuffled; the scratch files are removed once read."""
        try:
            for _, writer in self.writers.values():
                writer.close()
            for bucket in range(self.buckets):
                parts = [pq.read_table(self.writers[bucket][0])] if bucket in self.writers else []
                table = pa.concat_tables([*parts, to_table(self.waiting[bucket])])
                self.waiting[bucket] = []
                order = list(range(table.num_rows))
                self.rng.shuffle(order)
                yield table.take(pa.array(order, pa.int64()))
        finally:
            if self.scratch is not None:
                self.scratch.close()


def mix_tables(
    rows: Iterable[Record],
    golden: list[Record],
    ratio: float,
    seed: int,
    rows_at_most: int,
    scratch: Path | None = None,
) -> tuple[Iterator[pa.Table], dict[str, int]]:
    """Shuffle `rows` (a stream of at most `rows_at_most`) with the golden share of its synthetic rows
    (other rows, a reviewer's edits, join the mix as they are); return the shuffled tables and the count
    of synthetic and golden rows. Buckets spill to a scratch folder under `scratch`."""
    shuffled = ShuffledMix(rows_at_most + golden_count(rows_at_most, ratio), seed, scratch)
    synthetic = 0
    for row in rows:
        shuffled.add(row)
        synthetic += row.source == "synthetic"
    draws = random.Random(f"golden-{seed}")  # its own stream: the same golden rows however many buckets
    for row in golden_draws(golden, golden_count(synthetic, ratio), draws):
        shuffled.add(row)
    return shuffled.tables(), {"synthetic": synthetic, "golden": shuffled.rows - synthetic}


def mix(rows: list[Record], golden: list[Record], ratio: float, seed: int) -> list[Record]:
    """The mix of rows that fit in memory, as a list."""
    tables, _ = mix_tables(rows, golden, ratio, seed, len(rows))
    return [row for table in tables for row in from_table(table)]
