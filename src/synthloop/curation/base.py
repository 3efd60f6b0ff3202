"""What every curation stage shares: rows already rejected pass through untouched."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from synthloop.records import Record
from synthloop.skills.answers import normalize_text


class Stage(Protocol):
    name: str

    def run(self, records: Iterable[Record]) -> Iterator[Record]: ...


def question_key(question: str) -> str:
    """The normalised form two questions must share to count as the same item."""
    return normalize_text(question)


def run_stages(stages: list[Stage], records: Iterable[Record]) -> Iterator[Record]:
    """Chain stages lazily: each sees what the previous one yields."""
    for stage in stages:
        records = stage.run(records)
    yield from records
