"""Exact deduplication on the normalised question: the first occurrence is kept, later ones are
rejected as `duplicate` with the kept row's id as parent. Rows seen in earlier rounds count too."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from synthloop.curation.base import question_key
from synthloop.records import Record


class ExactDedup:
    name = "dedup"

    def __init__(self, seen: dict[str, str] | None = None):
        self.seen: dict[str, str] = dict(seen or {})  # question key -> id of the kept row

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            if record.kept:
                key = question_key(record.question)
                if key in self.seen:
                    record.add_verdict(self.name, False, "duplicate")
                    record.parent_ids.append(self.seen[key])
                else:
                    self.seen[key] = record.id
                    record.add_verdict(self.name, True)
            yield record
