"""What every curation stage shares: rows already rejected pass through untouched."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Protocol, TypeVar

from synthloop.records import Record
from synthloop.skills.answers import normalize_text

T = TypeVar("T")


class Stage(Protocol):
    name: str

    def run(self, records: Iterable[Record]) -> Iterator[Record]: ...


class RowStage:
    """A stage that decides each kept row on its own: subclasses write `judge(record)`, which adds the
    row's verdict; rows already rejected pass through unseen."""

    name: str

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            if record.kept:
                self.judge(record)
            yield record

    def judge(self, record: Record) -> None:
        raise NotImplementedError


class BatchStage:
    """A stage that decides kept rows a batch at a time (model calls, test runs, an index lookup):
    subclasses write `judge_batch(rows)` for the kept rows of each batch of `batch_rows`. Only one batch
    is ever held, whatever the length of the stream."""

    name: str
    batch_rows = 1024

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for batch in batched(records, self.batch_rows):
            if live := [r for r in batch if r.kept]:
                self.judge_batch(live)
            yield from batch

    def judge_batch(self, rows: list[Record]) -> None:
        raise NotImplementedError


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last may be shorter); what itertools.batched does from Python 3.12."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def question_key(question: str) -> str:
    """The normalised form two questions must share to count as the same item."""
    return normalize_text(question)


def key_hash(text: str) -> int:
    """A signed 64-bit hash (SQLite's INTEGER) of a question's normalised text (`question_key`)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def run_stages(stages: list[Stage], records: Iterable[Record]) -> Iterator[Record]:
    """Chain stages lazily: each sees what the previous one yields."""
    for stage in stages:
        records = stage.run(records)
    yield from records
