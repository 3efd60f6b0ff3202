"""Stages that decide rows together with the other rows of the same question (self-consistency votes,
pairwise judging), for a stream of any length and in any order.

Three passes, none holding more than a batch: the rows go to disk in order while each eligible row's
question hash, position and the little its decision reads go to an SQLite table; the table is read
back sorted by question (SQLite sorts on disk), so each question's group arrives complete, and its
decisions are stored by position; finally the rows are read back in order and each gets its decision.
The verdicts are the same as deciding the whole round in memory: a group's members are in row order."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from synthloop.curation.base import key_hash, question_key
from synthloop.records import Record
from synthloop.storage.spill import RowSpill, Scratch

WRITE_BATCH = 4096  # rows of SQLite inserts per statement batch


@dataclass(slots=True)
class Member:
    """What a group's decision reads of one row."""

    position: int  # in the stream
    id: str
    question: str
    text: str  # the answer (self-consistency) or the written answer (pairwise)


@dataclass(slots=True)
class Decision:
    keep: bool
    reason: str | None
    score: float | None
    detail: str | None
    reference: str | None = None  # filled in as the row's reference answer where it has none


class GroupedStage:
    """Subclasses say which rows take part (`member`, None for a row the stage leaves alone) and decide
    a batch of complete groups (`decide`); a group's members are in stream order."""

    name: str
    scratch_root: Path | None = None  # where scratch files go (the run's folder); the system's temp folder if None
    batch_members = 2048  # members decided together (a judge's calls run concurrently)

    def member(self, record: Record, position: int) -> Member | None:
        raise NotImplementedError

    def decide(self, groups: list[list[Member]]) -> list[list[Decision]]:
        raise NotImplementedError

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        scratch = Scratch(self.scratch_root)
        try:
            db = scratch.database("groups")
            db.execute(
                "CREATE TABLE members (key INTEGER, position INTEGER, id TEXT, question TEXT, text TEXT, "
                "PRIMARY KEY (key, position)) WITHOUT ROWID"
            )
            db.execute(
                "CREATE TABLE decisions (position INTEGER PRIMARY KEY, keep INTEGER, reason TEXT, score REAL, "
                "detail TEXT, reference TEXT)"
            )
            spill = RowSpill(scratch)
            self.collect(db, records, spill)
            self.decide_groups(db)
            yield from self.merge(db, spill)
        finally:
            scratch.close()

    def collect(self, db: sqlite3.Connection, records: Iterable[Record], spill: RowSpill) -> None:
        pending: list[tuple[int, int, str, str, str]] = []
        db.execute("BEGIN")
        for position, record in enumerate(records):
            spill.append(record)
            if (m := self.member(record, position)) is not None:
                pending.append((key_hash(question_key(m.question)), m.position, m.id, m.question, m.text))
                if len(pending) >= WRITE_BATCH:
                    db.executemany("INSERT INTO members VALUES (?, ?, ?, ?, ?)", pending)
                    pending = []
        db.executemany("INSERT INTO members VALUES (?, ?, ?, ?, ?)", pending)
        db.execute("COMMIT")

    def decide_groups(self, db: sqlite3.Connection) -> None:
        batch: list[list[Member]] = []
        size = 0
        members = db.execute("SELECT key, position, id, question, text FROM members ORDER BY key, position")
        for group in groups_in(members):
            batch.append(group)
            size += len(group)
            if size >= self.batch_members:
                self.store(db, batch)
                batch, size = [], 0
        self.store(db, batch)

    def store(self, db: sqlite3.Connection, groups: list[list[Member]]) -> None:
        if not groups:
            return
        rows = [
            (m.position, d.keep, d.reason, d.score, d.detail, d.reference)
            for group, decisions in zip(groups, self.decide(groups), strict=True)
            for m, d in zip(group, decisions, strict=True)
        ]
        db.execute("BEGIN")
        db.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")

    def merge(self, db: sqlite3.Connection, spill: RowSpill) -> Iterator[Record]:
        decisions = db.execute("SELECT * FROM decisions ORDER BY position")
        upcoming = next(decisions, None)
        for position, record in enumerate(spill):
            if upcoming is not None and upcoming[0] == position:
                _, keep, reason, score, detail, reference = upcoming
                if reference is not None and record.reference_answer is None:
                    record.reference_answer = reference
                record.add_verdict(self.name, bool(keep), reason, score, detail)
                upcoming = next(decisions, None)
            yield record


def groups_in(rows: Iterable[tuple[int, int, str, str, str]]) -> Iterator[list[Member]]:
    """Consecutive rows of one key, as a group of members."""
    group: list[Member] = []
    current: int | None = None
    for key, position, row_id, question, text in rows:
        if group and key != current:
            yield group
            group = []
        current = key
        group.append(Member(position, row_id, question, text))
    if group:
        yield group
