"""Self-consistency: several teacher samples of the same question vote. The majority answer's share is
the agreement score on every row of the question; rows that disagree with the majority are rejected,
and when the agreement is below `min_agreement` the whole question is (the teacher is unsure). A row
without a reference (a problem the teacher wrote) that the vote keeps gets the majority answer as its
reference.
A question with a single sample gets no vote: it is kept with that said."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from synthloop.curation.base import question_key
from synthloop.records import Record
from synthloop.skills.answers import normalize_text, parse_number

FRACTION = re.compile(r"^([-+]?)\\[dt]?frac\{\s*([-+]?\d+)\s*\}\{\s*(\d+)\s*\}$")  # -\frac{1}{2}, \dfrac{1}{2}
OPTION = re.compile(r"^(?i:option\s+)?\(?([A-Z])\)?[.):]?$")  # B, (B), B), B., Option B: a letter alone


def answer_key(answer: str) -> str:
    """Answers that mean the same vote together: "0.50", "1/2", "\\frac{1}{2}" and "$0.5" are one number;
    "B", "(B)", "B)" and "Option B" are one option ("B) Paris" is not merged: "A. Lincoln" is no option)."""
    text = answer.strip()
    fraction = FRACTION.match(text)
    number = parse_number(f"{fraction[1]}{fraction[2]}/{fraction[3]}" if fraction else text)
    if number is not None:
        return f"#{number}"
    option = OPTION.match(text)
    if option:
        return f"option:{option[1]}"
    return normalize_text(answer)


class SelfConsistency:
    name = "self_consistency"

    def __init__(self, min_agreement: float = 0.5):
        self.min_agreement = min_agreement
        self.abstained = 0  # questions with one sample: kept unvoted, counted so it is never unseen

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        rows = list(records)
        groups: dict[str, list[Record]] = {}
        for record in rows:
            if record.kept and record.answer is not None:
                groups.setdefault(question_key(record.question), []).append(record)
        for group in groups.values():
            self.vote(group)
        yield from rows

    def vote(self, group: list[Record]) -> None:
        if len(group) == 1:
            self.abstained += 1
            group[0].add_verdict(self.name, True, None, None, "one sample: no vote")
            return
        votes = Counter(answer_key(r.answer or "") for r in group)
        (winner, count), *_ = votes.most_common(1)
        agreement = count / len(group)
        detail = f"{count} of {len(group)} samples agree"
        majority = next(r.answer for r in group if answer_key(r.answer or "") == winner)
        for record in group:
            if agreement < self.min_agreement:
                record.add_verdict(self.name, False, "low_agreement", agreement, detail)
            elif answer_key(record.answer or "") != winner:
                record.add_verdict(self.name, False, "disagrees_with_majority", agreement, detail)
            else:
                if record.reference_answer is None:  # a written problem: the verified majority is its reference
                    record.reference_answer = majority
                record.add_verdict(self.name, True, None, agreement, detail)
