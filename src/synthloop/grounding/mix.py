"""Mix synthetic rows with the golden set at a fixed ratio.

`ratio` is the golden share of the mix. A small golden set is repeated to reach its share (each
repeat is the same row, same id: its provenance does not change), and every row keeps its
`source` label, so the training set always says which rows are human and which are synthetic."""

from __future__ import annotations

import random

from synthloop.records import Record


def golden_count(n_synthetic: int, ratio: float) -> int:
    return round(n_synthetic * ratio / (1.0 - ratio)) if ratio > 0 else 0


def mix(synthetic: list[Record], golden: list[Record], ratio: float, seed: int) -> list[Record]:
    rng = random.Random(seed)
    want = golden_count(len(synthetic), ratio) if golden else 0
    chosen: list[Record] = []
    while len(chosen) < want:
        pool = golden[:]
        rng.shuffle(pool)
        chosen.extend(pool[: want - len(chosen)])
    rows = synthetic + chosen
    rng.shuffle(rows)
    return rows
