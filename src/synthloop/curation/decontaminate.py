"""Decontamination against the held-out probes: the loop must never train on an item it is
evaluated on. Exact match on the normalised question (the n-gram version comes with issue 4)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from synthloop.curation.base import question_key
from synthloop.records import Record


class Decontaminate:
    name = "decontaminate"

    def __init__(self, held_out_questions: Iterable[str]):
        self.held_out = {question_key(q) for q in held_out_questions}

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            if record.kept:
                clean = question_key(record.question) not in self.held_out
                record.add_verdict(self.name, clean, None if clean else "contaminated")
            yield record
