"""Exact deduplication on the normalised question: the first occurrence is kept, later ones are
rejected as `duplicate` with the kept row's id as parent. Rows seen in earlier rounds count too.
Also what the near and semantic dedup stages share: a match per row and how it becomes a verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Match:
    representative: int  # index of the kept document this one belongs to (itself when kept)
    similarity: float  # with the representative (1.0 for itself)


def record_matches(
    stage: str, reason: str, measure: str, rows: list[Record], matches: list[Match], ids: list[str]
) -> None:
    """Turn greedy matches into verdicts. `ids[k]` is the row id of document k; `rows` are the last
    len(rows) documents. A duplicate names its kept row as parent; a kept row says how many it stands for."""
    offset = len(ids) - len(rows)
    stands_for = Counter(m.representative for m in matches)
    for i, (record, match) in enumerate(zip(rows, matches, strict=True)):
        if match.representative == offset + i:
            extra = stands_for[match.representative] - 1
            record.add_verdict(stage, True, None, None, f"kept for {extra} duplicates" if extra else None)
        else:
            kept_id = ids[match.representative]
            detail = f"{measure} {match.similarity:.2f} with {kept_id}"
            record.add_verdict(stage, False, reason, match.similarity, detail)
            record.parent_ids.append(kept_id)
