"""What every curation stage shares: rows already rejected pass through untouched."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from synthloop.records import Record
from synthloop.skills.answers import normalize_text


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


def question_key(question: str) -> str:
    """The normalised form two questions must share to count as the same item."""
    return normalize_text(question)


def run_stages(stages: list[Stage], records: Iterable[Record]) -> Iterator[Record]:
    """Chain stages lazily: each sees what the previous one yields."""
    for stage in stages:
        records = stage.run(records)
    yield from records
