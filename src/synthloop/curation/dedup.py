"""Exact deduplication on the normalised question: the first occurrence is kept, later ones are
rejected as `duplicate` with the kept row's id as parent. Rows seen in earlier rounds count too.
The questions seen are kept as 64-bit hashes of their normalised text in an SQLite file on disk, so
memory stays flat however many rows pass (two different questions share a hash with a chance of
about n²/2⁶⁵: one in a million for six million questions).
Also what the near and semantic dedup stages share: a match per row and how it becomes a verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from synthloop.curation.base import BatchStage, key_hash, question_key
from synthloop.records import Record
from synthloop.storage.spill import Scratch


class ExactDedup(BatchStage):
    name = "dedup"
    batch_rows = 4096

    def __init__(self, earlier: Iterable[tuple[str, str]] = (), scratch_root: Path | None = None):
        """`earlier`: (question, id) of rows kept before this stage ran (earlier rounds)."""
        self.scratch = Scratch(scratch_root)
        self.db = self.scratch.database("seen")
        self.db.execute("CREATE TABLE seen (key INTEGER PRIMARY KEY, id TEXT)")  # question hash -> kept row
        self.db.execute("BEGIN")
        rows = ((key_hash(question_key(question)), row_id) for question, row_id in earlier)
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", rows)  # the first one stays
        self.db.execute("COMMIT")

    def judge_batch(self, rows: list[Record]) -> None:
        keys = [key_hash(question_key(r.question)) for r in rows]
        wanted = sorted(set(keys))
        wanted += wanted[-1:] * (self.batch_rows - len(wanted))  # one statement text for every batch: one
        marks = ",".join("?" * len(wanted))  # prepared statement in SQLite's cache, not one per batch length
        seen = dict(self.db.execute(f"SELECT key, id FROM seen WHERE key IN ({marks})", wanted))
        new = []
        for record, key in zip(rows, keys, strict=True):
            if key in seen:
                record.add_verdict(self.name, False, "duplicate")
                record.parent_ids.append(seen[key])
            else:
                seen[key] = record.id
                new.append((key, record.id))
                record.add_verdict(self.name, True)
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO seen VALUES (?, ?)", new)
        self.db.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class Match:
    representative: int  # index of the kept document this one belongs to (itself when kept)
    similarity: float  # with the representative (1.0 for itself)


def record_matches(
    stage: str,
    reason: str,
    measure: str,
    rows: list[Record],
    matches: list[Match],
    first: int,
    id_of: Callable[[int], str],
    count_duplicates: bool = True,
) -> None:
    """Turn greedy matches into verdicts. `rows` are documents first, first + 1, ...; `id_of(k)` is the
    row id of document k. A duplicate names its kept row as parent; with `count_duplicates` (a stage
    that sees all its rows at once), a kept row says how many rows it stands for."""
    stands_for = Counter(m.representative for m in matches)
    for i, (record, match) in enumerate(zip(rows, matches, strict=True)):
        if match.representative == first + i:
            extra = stands_for[match.representative] - 1 if count_duplicates else 0
            record.add_verdict(stage, True, None, None, f"kept for {extra} duplicates" if extra else None)
        else:
            kept_id = id_of(match.representative)
            detail = f"{measure} {match.similarity:.2f} with {kept_id}"
            record.add_verdict(stage, False, reason, match.similarity, detail)
            record.parent_ids.append(kept_id)
