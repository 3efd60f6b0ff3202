"""Human decisions applied to rows: a `human` verdict that overrides the stages, and an edit as a new
row beside its original.

The files curation wrote are never changed: the decisions are applied when a later step reads them
(the next round's training mix, `--resume`, `synthloop export`, the report), so they can be undone and
every row still shows what the stages said."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

from synthloop.records import HUMAN, Record, Verdict
from synthloop.review.decisions import Decision, DecisionLog, HumanVerdict, changed_fields
from synthloop.storage.shards import digest, iter_records


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
    seen: set[str] = set()  # an exact duplicate shares its kept twin's id: that row is decided once
    for row in iter_records(rdir / "curated"):
        if row.id in humans:
            seen.add(row.id)
        yield from human_applied(row, humans, edits_to)
    if not humans:
        return
    for row in iter_records(rdir / "rejected"):
        if row.id in humans and humans[row.id].keep and row.id not in seen:
            seen.add(row.id)
            yield from human_applied(row, humans, edits_to)


def decisions_digest(decisions: list[Decision], up_to_round: int) -> str | None:
    """What a training mix was made from, on the humans' side: the decisions on rows of rounds up to
    `up_to_round` (None: there were none, and a run without review keeps its digests)."""
    ids = [d.id for d in decisions if d.round <= up_to_round]
    return digest(ids) if ids else None


def read_decisions(run_root: Path, first: int | None = None) -> list[Decision]:
    """The run's decisions, the `first` ones when given (what an earlier mix was made from)."""
    decisions = DecisionLog(run_root).read()
    return decisions if first is None else decisions[:first]
