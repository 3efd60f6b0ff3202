"""Verification: score the teacher's final answer with the skill's own scorer against the
reference, or, for rows of no registered skill (a user's data, prompt tasks), by symbolic equivalence.
A failed call, an unparsable output and a wrong answer are rejected with distinct reasons."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from synthloop.curation.verify_math import symbolically_equal
from synthloop.records import Record
from synthloop.registry import SKILLS


class VerifyAnswers:
    name = "verify"

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            if record.kept:
                record.add_verdict(self.name, *self.judge(record))
            yield record

    @staticmethod
    def judge(record: Record) -> tuple[bool, str | None, float | None]:
        if record.error is not None:
            return False, "teacher_error", None
        if record.answer is None:
            return False, "parse_error", None
        if record.reference_answer is None:
            return True, None, None  # nothing to check against: abstain, keep
        if record.skill in SKILLS:
            score = SKILLS.get(record.skill).score(f"#### {record.answer}", record.reference_answer)
            return (True, None, score) if score >= 1.0 else (False, "wrong_answer", score)
        equal = symbolically_equal(record.answer, record.reference_answer)
        if equal is None:
            return True, None, None  # cannot tell: abstain, keep
        return (True, None, 1.0) if equal else (False, "wrong_answer", 0.0)
