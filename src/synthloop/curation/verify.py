"""Verification: score the teacher's final answer with the skill's own scorer against the
reference, or, for rows of no registered skill (a user's data, prompt tasks), by symbolic equivalence.
A failed call, an unparsable output and a wrong answer are rejected with distinct reasons."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from synthloop.curation.verify_math import symbolically_equal
from synthloop.records import Record
from synthloop.registry import SKILLS


class VerifyAnswers:
    """A row it cannot judge (no reference answer, or answers it cannot compare) is an abstention:
    counted, said in the verdict's detail, and kept or rejected (`verify_abstained`) per `on_abstain`."""

    name = "verify"

    def __init__(self, on_abstain: str = "keep"):
        self.on_abstain, self.abstained = on_abstain, 0

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            if record.kept:
                ok, reason, score, detail = self.judge(record)
                if detail is not None:  # abstained
                    self.abstained += 1
                    if self.on_abstain == "reject":
                        ok, reason = False, "verify_abstained"
                record.add_verdict(self.name, ok, reason, score, detail)
            yield record

    @staticmethod
    def judge(record: Record) -> tuple[bool, str | None, float | None, str | None]:
        if record.error is not None:
            return False, "teacher_error", None, None
        if record.answer is None:
            return False, "parse_error", None, None
        if record.reference_answer is None:
            return True, None, None, "no reference answer: abstained"
        if record.skill in SKILLS:
            score = SKILLS.get(record.skill).score(f"#### {record.answer}", record.reference_answer)
            return (True, None, score, None) if score >= 1.0 else (False, "wrong_answer", score, None)
        equal = symbolically_equal(record.answer, record.reference_answer)
        if equal is None:
            return True, None, None, "answer and reference could not be compared: abstained"
        return (True, None, 1.0, None) if equal else (False, "wrong_answer", 0.0, None)
