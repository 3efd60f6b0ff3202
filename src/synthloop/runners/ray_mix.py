"""The training mix on Ray Data: the same rows in the same order as `grounding/mix.py` writes locally.

Read tasks on the head node read the rounds' curated shards, a slice each, and apply the humans'
decisions there; the driver learns only how many rows each slice holds (to number them and to know
the golden share), draws the golden rows, and Ray Data sorts the whole mix by each row's seeded key
(the key of its position in the stream, as locally). The driver then reads the sorted mix batch by
batch, as Arrow, to write the training shards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from synthloop.curation.base import batched
from synthloop.grounding.mix import MIX_KEY, MIX_POSITION, golden_count, golden_draws, golden_stream, keyed
from synthloop.records import Record, to_table
from synthloop.runners.ray_curate import BATCH_ROWS, HEAD_NODE, INPUT_SHARD_ROWS


def mix_on_ray(rows: Any, golden: list[Record], ratio: float, seed: int) -> tuple[Iterator[pa.Table], dict[str, int]]:
    """`mix_tables` on Ray: `rows` is read in slices (`slices`, `read_slice`) by read tasks. Returns the
    mixed tables in order and the count of synthetic, golden and other (`edited`) rows."""
    import ray

    read = ray.remote(read_mix_slice).options(num_returns=2, max_retries=3, **HEAD_NODE)
    place = ray.remote(keyed).options(max_retries=3)
    reads = [read.remote(rows.read_slice, piece) for piece in rows.slices(INPUT_SHARD_ROWS)]
    refs: list[Any] = []
    position = synthetic = 0
    for table, count in reads:  # in stream order: each slice's rows numbered after the slices before
        held, synthetic_held = ray.get(count)
        if held:
            refs.append(place.remote(table, seed, position))
        position += held
        synthetic += synthetic_held
    drawn = 0
    for chunk in batched(golden_draws(golden, golden_count(synthetic, ratio), golden_stream(seed)), INPUT_SHARD_ROWS):
        refs.append(ray.put(keyed(to_table(chunk), seed, position)))
        position += len(chunk)
        drawn += len(chunk)
    counts = {"synthetic": synthetic, "golden": drawn, "edited": position - drawn - synthetic}
    if not refs:
        return iter(()), counts
    ds = ray.data.from_arrow_refs(refs).sort([MIX_KEY, MIX_POSITION])
    batches = ds.iter_batches(batch_format="pyarrow", batch_size=BATCH_ROWS)
    return (batch.drop_columns([MIX_KEY, MIX_POSITION]) for batch in batches), counts


def read_mix_slice(read: Callable[[Any], tuple[list[Record], int]], piece: Any) -> tuple[pa.Table, tuple[int, int]]:
    """A slice's training rows as Arrow, with how many there are and how many of them are synthetic."""
    records, _ = read(piece)
    return to_table(records), (len(records), sum(row.source == "synthetic" for row in records))
