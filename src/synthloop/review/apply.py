"""Human decisions applied to rows: a `human` verdict that overrides the stages, and an edit as a new
row beside its original.

The files curation wrote are never changed: the decisions are applied when a later step reads them
(the next round's training mix, `--resume`, `synthloop export`, the report), so they can be undone and
every row still shows what the stages said."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthloop.records import HUMAN, Record, Verdict, from_table
from synthloop.review.decisions import Decision, DecisionLog, HumanVerdict, changed_fields
from synthloop.storage.shards import digest, grouped_shards, iter_records, shard_file_rows


def apply_human(rows: Iterable[Record], humans: dict[str, HumanVerdict], edits_to: str = "golden") -> list[Record]:
    """`rows` with each reviewed row's human verdict, and after each accepted edit its edited row: a new
    row (its own id; `parent_ids` the original's) with `source: human` when `edits_to` is golden. The
    original is kept beside it, rejected as `replaced_by_edit`, so its text is never lost."""
    return [out for row in rows for out in human_applied(row, humans, edits_to)]


def human_applied(row: Record, humans: dict[str, HumanVerdict], edits_to: str) -> list[Record]:
    """One row with its human decision: itself, or itself and its edited row after it."""
    human = humans.get(row.id)
    if human is None:
        return [row]
    if human.keep and changed_fields(row, human.edit):
        row.add_verdict(HUMAN, False, "replaced_by_edit", None, human.detail())
        return [row, edited_row(row, human, edits_to)]
    if human.keep and row.answer is None:
        row.add_verdict(HUMAN, False, "no_answer", None, human.detail() + "; accepted, but it has no answer")
    else:
        row.add_verdict(HUMAN, human.keep, None if human.keep else human.reason, None, human.detail())
    return [row]


def edited_row(row: Record, human: HumanVerdict, edits_to: str) -> Record:
    edit = changed_fields(row, human.edit)
    original = "; ".join(f"original {k}: {' '.join(str(getattr(row, k)).split())[:300]}" for k in edit)
    stages = [v for v in row.verdicts if v.stage != HUMAN]
    return dataclasses.replace(
        row,
        answer=edit["answer"].strip() if "answer" in edit else row.answer,
        reasoning=edit["reasoning"].strip() if "reasoning" in edit else row.reasoning,
        error=None,  # a reviewer wrote this row's answer: a failed call is the original's story
        source="human" if edits_to == "golden" else row.source,
        parent_ids=[row.id],
        verdicts=[*stages, Verdict(HUMAN, True, "edited", None, f"{human.detail()}; {original}")],
        id="",  # a new content id
    )


def reviewed_rows(rdir: Path, humans: dict[str, HumanVerdict], edits_to: str) -> Iterator[Record]:
    """A round's rows as the humans left them, streamed: the curated rows and the rejected rows a human
    accepted, decisions applied (read `.kept` for what trains). Memory holds the decisions, not the rows."""
    for row in iter_records(rdir / "curated"):
        yield from human_applied(row, humans, edits_to)
    yield from accepted_rejected(rdir, humans, edits_to)


def accepted_rejected(rdir: Path, humans: dict[str, HumanVerdict], edits_to: str) -> Iterator[Record]:
    """The round's rejected rows a human accepted, decisions applied. An exact duplicate shares its kept
    twin's id: a row whose id was decided on a curated row (or an earlier rejected one) is skipped."""
    accepted = pa.array([row_id for row_id, human in humans.items() if human.keep], pa.string())
    if not len(accepted):
        return
    seen = set(ids_among(rdir / "curated", accepted))
    for path in sorted((rdir / "rejected").glob("part-*.parquet")):
        table = pq.read_table(path)
        for row in from_table(table.filter(pc.is_in(table.column("id"), value_set=accepted))):
            if row.id not in seen:
                seen.add(row.id)
                yield from human_applied(row, humans, edits_to)


def ids_among(folder: Path, ids: pa.Array) -> list[str]:
    """The ids of a shard folder's rows that are among `ids` (only the id column is read)."""
    out: list[str] = []
    for path in sorted(folder.glob("part-*.parquet")):
        column = pq.read_table(path, columns=["id"]).column("id")
        out += column.filter(pc.is_in(column, value_set=ids)).to_pylist()
    return out


@dataclass(frozen=True)
class ReviewedRound:
    """One round's part of a training mix: its folder, the humans' verdicts on its rows, and whether its
    kept synthetic rows train (otherwise only the rows its reviewers edited, `source: human`)."""

    rdir: Path
    humans: dict[str, HumanVerdict]
    synthetic: bool


@dataclass(frozen=True)
class ReviewedSlice:
    """Shards of a round's curated rows, or (no paths) the round's rejected rows a human accepted."""

    part: ReviewedRound
    paths: tuple[Path, ...]
    rows: int


class ReviewedRows:
    """The rows a training mix takes from the rounds, the humans' decisions applied, each passed through
    `prepare`: iterated in this process, or on Ray read by read tasks a slice each (`slices`,
    `read_slice`) in the same order."""

    def __init__(self, rounds: list[ReviewedRound], edits_to: str, prepare: Callable[[Record], Record]):
        self.rounds, self.edits_to, self.prepare = rounds, edits_to, prepare

    def trains(self, row: Record, part: ReviewedRound) -> bool:
        return row.kept and ((row.source == "synthetic" and part.synthetic) or row.source == "human")

    def __iter__(self) -> Iterator[Record]:
        for part in self.rounds:
            for row in reviewed_rows(part.rdir, part.humans, self.edits_to):
                if self.trains(row, part):
                    yield self.prepare(row)

    def slices(self, rows_per_slice: int) -> list[ReviewedSlice]:
        out: list[ReviewedSlice] = []
        for part in self.rounds:
            shards = grouped_shards(sorted((part.rdir / "curated").glob("part-*.parquet")), rows_per_slice)
            out += [ReviewedSlice(part, piece.paths, piece.rows) for piece in shards]
            if any(human.keep for human in part.humans.values()):
                out.append(ReviewedSlice(part, (), 0))
        return out

    def read_slice(self, piece: ReviewedSlice) -> tuple[list[Record], int]:
        """A slice's training rows, prepared, and how many there are."""
        part = piece.part
        if piece.paths:
            curated = (row for path in piece.paths for row in shard_file_rows(path))
            rows = (out for row in curated for out in human_applied(row, part.humans, self.edits_to))
        else:
            rows = accepted_rejected(part.rdir, part.humans, self.edits_to)
        records = [self.prepare(row) for row in rows if self.trains(row, part)]
        return records, len(records)

    def counted(self, rows: int, answered: int) -> None:
        """What the read tasks counted (the mix counts its rows itself)."""


def decisions_digest(decisions: list[Decision], up_to_round: int) -> str | None:
    """What a training mix was made from, on the humans' side: the decisions on rows of rounds up to
    `up_to_round` (None: there were none, and a run without review keeps its digests)."""
    ids = [d.id for d in decisions if d.round <= up_to_round]
    return digest(ids) if ids else None


def read_decisions(run_root: Path, first: int | None = None) -> list[Decision]:
    """The run's decisions, the `first` ones when given (what an earlier mix was made from)."""
    decisions = DecisionLog(run_root).read()
    return decisions if first is None else decisions[:first]
