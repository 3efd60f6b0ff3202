"""Cheap diversity signals of a round's training data: lost diversity is the first sign of collapse."""

from __future__ import annotations

import hashlib
import heapq
import zlib
from collections.abc import Callable, Iterable

import pyarrow as pa

from synthloop.records import Record, from_table


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams over all n-grams (1.0: nothing repeats)."""
    grams = [tuple(words[i : i + n]) for text in texts for words in [text.split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def compression_ratio(texts: list[str]) -> float:
    """Raw bytes over zlib-compressed bytes of all texts together: 1 to 2 for varied prose, rising as rows
    repeat one another (a collapsing generator's output compresses well)."""
    raw = "\n".join(texts).encode()
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


SAMPLE = 1000  # rows the figures are computed on: distinct-n falls with sample size, so rounds compare at one size


class SeededSample:
    """A seeded sample of at most `size` rows, kept while rows stream past: the rows whose seeded hash of
    their id is smallest. The same rows give the same sample in any order, from a list or a stream of
    millions, in memory for `size` rows only."""

    def __init__(self, seed: int, size: int = SAMPLE):
        self.salt, self.size = str(seed).encode(), size
        self.heap: list[tuple[int, str, int, Record]] = []  # (-hash, id, -seen, row): the largest hash on top
        self.seen = 0  # rows offered: orders rows with one id (an exact duplicate's twin) as they came

    def offer(self, row: Record) -> None:
        self.offer_lazily(row.id, lambda: row)

    def offer_lazily(self, row_id: str, row: Callable[[], Record]) -> None:
        """Offer the row with this id, made by `row()` only if it enters the sample."""
        key = -int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8, key=self.salt).digest(), "big")
        self.seen += 1
        item = (key, row_id, -self.seen)
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, (*item, row()))
        elif item > self.heap[0][:3]:
            heapq.heapreplace(self.heap, (*item, row()))

    def offer_table(self, table: pa.Table, rows: Iterable[int]) -> None:
        """Offer the given rows of an Arrow table of records; only those that enter become records."""
        ids = table.column("id").to_pylist()
        for i in rows:
            self.offer_lazily(ids[i], lambda i=i: from_table(table.slice(i, 1))[0])

    def rows(self) -> list[Record]:
        return [item[3] for item in sorted(self.heap, key=lambda item: (-item[0], item[1], -item[2]))]


def round_sample(train_rows: Iterable[Record], number: int | None, seed: int = 0) -> list[Record]:
    """This round's own synthetic rows (not those accumulated from earlier rounds; every round's when
    `number` is None), a seeded sample of at most SAMPLE: the same figure for the same data whatever the
    strategy and the round's size."""
    sample = SeededSample(seed)
    for row in train_rows:
        if row.source == "synthetic" and (number is None or row.round == number):
            sample.offer(row)
    return sample.rows()


def row_text(row: Record) -> str:
    return " ".join(part for part in (row.question, row.reasoning, row.answer) if part)


def completion_text(row: Record) -> str:
    """What a model writes for the row: its reasoning and answer."""
    return " ".join(part for part in (row.reasoning, row.answer) if part)


def diversity(train_rows: list[Record], number: int | None = None, seed: int = 0) -> dict[str, float]:
    """Diversity of round `number`'s synthetic rows (a sample; all rounds' when None), and the synthetic
    share of the whole training mix."""
    synthetic = sum(r.source == "synthetic" for r in train_rows)
    return sample_diversity(round_sample(train_rows, number, seed), synthetic, len(train_rows))


def sample_diversity(sample: list[Record], synthetic: int, rows: int) -> dict[str, float]:
    """The diversity figures of a round's sample, and the synthetic share of a mix of `rows` rows."""
    questions = [r.question for r in sample]
    texts = [row_text(r) for r in sample]
    return {
        "distinct_2_questions": round(distinct_n(questions, 2), 4),
        "distinct_3_texts": round(distinct_n(texts, 3), 4),
        "compression_ratio": round(compression_ratio(texts), 4),
        "unique_question_share": round(len(set(questions)) / len(questions), 4) if questions else 0.0,
        "synthetic_share_of_train": round(synthetic / rows, 4) if rows else 0.0,
    }
