"""Self-consistency: several teacher samples of the same question vote. The majority answer's share is
the agreement score on every row of the question; rows that disagree with the majority are rejected,
and when the agreement is below `min_agreement` the whole question is (the teacher is unsure). A row
without a reference (a problem the teacher wrote) that the vote keeps gets the majority answer as its
reference.
A question with a single sample gets no vote: it is kept with that said."""

from __future__ import annotations

import re
from collections import Counter

from synthloop.curation.groups import Decision, GroupedStage, Member
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


class SelfConsistency(GroupedStage):
    name = "self_consistency"

    def __init__(self, min_agreement: float = 0.5):
        self.min_agreement = min_agreement
        self.abstained = 0  # questions with one sample: kept unvoted, counted so it is never unseen

    def member(self, record: Record, position: int) -> Member | None:
        if not record.kept or record.answer is None:
            return None
        return Member(position, record.id, record.question, record.answer)

    def decide(self, groups: list[list[Member]]) -> list[list[Decision]]:
        return [self.vote(group) for group in groups]

    def vote(self, group: list[Member]) -> list[Decision]:
        if len(group) == 1:
            self.abstained += 1
            return [Decision(True, None, None, "one sample: no vote")]
        keys = [answer_key(m.text) for m in group]
        (winner, count), *_ = Counter(keys).most_common(1)
        agreement = count / len(group)
        detail = f"{count} of {len(group)} samples agree"
        majority = group[keys.index(winner)].text  # a written problem's reference: the verified majority
        if agreement < self.min_agreement:
            return [Decision(False, "low_agreement", agreement, detail) for _ in group]
        return [
            Decision(True, None, agreement, detail, majority)
            if key == winner
            else Decision(False, "disagrees_with_majority", agreement, detail)
            for key in keys
        ]
