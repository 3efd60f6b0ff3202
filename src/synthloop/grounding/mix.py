"""Mix synthetic rows with the golden set at a fixed ratio, shuffled on disk so a mix of any size is
written with the memory of one bucket.

`ratio` is the golden share of the mix. A small golden set is repeated to reach its share (each
repeat is the same row, same id: its provenance does not change), and every row keeps its
`source` label, so the training set always says which rows are human and which are synthetic.

The shuffle sorts the mix by a seeded random key per row: the key of the row at position i of the
stream (the synthetic rows in the order read, then the golden draws) is the i-th number of the seed's
SplitMix64 sequence. Sorting by independent uniform keys is a uniform shuffle, and it is the same
shuffle however it is computed: here, rows go to buckets by key range (a Parquet file each in scratch
once more than a few thousand rows wait) and each bucket is sorted in turn; on Ray
(`runners/ray_mix.py`) Ray Data sorts the whole mix by the same keys. Both write the same rows in the
same order."""

from __future__ import annotations

import contextlib
import random
import resource
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthloop.records import Record, from_table, to_table
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


MIX_KEY, MIX_POSITION = "_mix_key", "_mix_position"  # columns the shuffle sorts by


def mix_keys(seed: int, positions: np.ndarray) -> np.ndarray:
    """The sort keys of the rows at `positions` of a mix: SplitMix64 outputs of the seed's sequence,
    63 bits (non-negative int64, which every sorter orders alike)."""
    with np.errstate(over="ignore"):
        state = np.uint64(random.Random(f"mix-key-{seed}").getrandbits(64))
        z = state + (positions.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(1)).astype(np.int64)


def keyed(table: pa.Table, seed: int, first_position: int) -> pa.Table:
    """`table` (rows at positions from `first_position`) with each row's position and sort key."""
    positions = np.arange(first_position, first_position + table.num_rows, dtype=np.int64)
    return table.append_column(MIX_POSITION, pa.array(positions)).append_column(
        MIX_KEY, pa.array(mix_keys(seed, positions))
    )


def in_mix_order(table: pa.Table) -> pa.Table:
    """Rows sorted by their keys (a tie, never seen in practice, by position), the two columns dropped."""
    order = pc.sort_indices(table, sort_keys=[(MIX_KEY, "ascending"), (MIX_POSITION, "ascending")])
    return table.take(order).drop_columns([MIX_KEY, MIX_POSITION])


class ShuffledMix:
    """Rows added one at a time, read back as Arrow tables sorted by their keys: bucket by bucket, each
    bucket a range of keys."""

    def __init__(self, rows_at_most: int, seed: int, scratch_root: Path | None = None):
        self.seed = seed
        self.buckets = bucket_count(rows_at_most)
        self.waiting: list[Record] = []
        self.held: list[list[pa.Table]] = [[] for _ in range(self.buckets)]  # one bucket: never on disk
        self.rows = 0
        self.scratch_root, self.scratch = scratch_root, None
        self.writers: dict[int, tuple[Path, pq.ParquetWriter]] = {}

    def add(self, row: Record) -> None:
        self.waiting.append(row)
        if len(self.waiting) >= WAITING_ROWS:
            self.deal()

    def deal(self) -> None:
        """The waiting rows keyed and dealt to their buckets (written to the buckets' files if several)."""
        if not self.waiting:
            return
        table = keyed(to_table(self.waiting), self.seed, self.rows)
        self.rows += len(self.waiting)
        self.waiting = []
        buckets = (table.column(MIX_KEY).to_numpy() >> 31) * self.buckets >> 32  # key range: 63 bits
        for bucket in np.unique(buckets).tolist():
            part = table.filter(pa.array(buckets == bucket))
            if self.buckets == 1:
                self.held[bucket].append(part)
                continue
            if bucket not in self.writers:
                self.scratch = self.scratch or Scratch(self.scratch_root)
                path = self.scratch.path / f"bucket-{bucket:05d}.parquet"
                self.writers[bucket] = path, pq.ParquetWriter(path, part.schema, compression="zstd")
            self.writers[bucket][1].write_table(part)

    def tables(self) -> Iterator[pa.Table]:
        """Each bucket in key order, sorted; the scratch files are removed once read."""
        self.deal()
        try:
            for _, writer in self.writers.values():
                writer.close()
            for bucket in range(self.buckets):
                parts = [pq.read_table(self.writers[bucket][0])] if bucket in self.writers else self.held[bucket]
                self.held[bucket] = []
                if parts:
                    yield in_mix_order(pa.concat_tables(parts))
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
    engine: str = "local",
) -> tuple[Iterator[pa.Table], dict[str, int]]:
    """Shuffle `rows` (a stream of at most `rows_at_most`) with the golden share of its synthetic rows
    (other rows, a reviewer's edits, join the mix as they are); return the shuffled tables and the count
    of synthetic, golden and other rows (`edited`: a reviewer's edits). Buckets spill to a scratch folder
    under `scratch`. With `engine="ray"` (Ray joined; `rows` read in slices by read tasks) the mix runs
    on Ray Data: the same rows in the same order."""
    if engine == "ray":
        from synthloop.runners.ray_mix import mix_on_ray

        return mix_on_ray(rows, golden, ratio, seed)
    shuffled = ShuffledMix(rows_at_most + golden_count(rows_at_most, ratio), seed, scratch)
    synthetic = other = 0
    for row in rows:
        shuffled.add(row)
        synthetic += row.source == "synthetic"
        other += row.source != "synthetic"
    drawn = 0
    for row in golden_draws(golden, golden_count(synthetic, ratio), golden_stream(seed)):
        shuffled.add(row)
        drawn += 1
    return shuffled.tables(), {"synthetic": synthetic, "golden": drawn, "edited": other}


def golden_stream(seed: int) -> random.Random:
    """What the golden rows are drawn with: a stream of its own, the same on every engine."""
    return random.Random(f"golden-{seed}")


def mix(rows: list[Record], golden: list[Record], ratio: float, seed: int) -> list[Record]:
    """The mix of rows that fit in memory, as a list."""
    tables, _ = mix_tables(rows, golden, ratio, seed, len(rows))
    return [row for table in tables for row in from_table(table)]
