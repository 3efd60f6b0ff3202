"""A finished round's rows as the review sees them: every generated row with the stages' verdicts
(curated/ and rejected/), the queue, the audit slice, each row's lineage, and the agreement figures.

Rows stay in one Arrow table and are turned into Python only when shown, so a round of 100,000 rows
opens in about a second and a row is served in microseconds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synthloop.records import SCHEMA, Verdict
from synthloop.review.agreement import RowFacts, kept_error_estimate, reviewer_alpha, stage_agreement
from synthloop.review.decisions import DecisionLog, LogFollower, ReviewError, changed_fields, human_verdicts
from synthloop.review.queue import (
    UNANSWERED,
    AuditSlice,
    Thresholds,
    audit_slice,
    disagreement,
    review_order,
)
from synthloop.storage.atomic import read_json
from synthloop.storage.shards import is_complete


def finished_rounds(run_root: Path) -> list[int]:
    """Rounds whose curation finished (curated/ and rejected/ complete): the ones there is something to review."""
    rounds_dir = run_root / "rounds"
    found = []
    for path in sorted(rounds_dir.glob("[0-9][0-9]*")) if rounds_dir.is_dir() else []:
        if path.name.isdigit() and is_complete(path / "curated") and is_complete(path / "rejected"):
            found.append(int(path.name))
    return found


def check_run(run_root: Path) -> dict[str, Any]:
    """The run's manifest, or ReviewError with what to do."""
    if not run_root.is_dir():
        raise ReviewError(f"{run_root} is not a run directory (no such folder); give the --run-dir of a run")
    try:
        manifest = read_json(run_root / "manifest.json")
    except (OSError, ValueError):
        raise ReviewError(
            f"{run_root} has no readable manifest.json: not a run directory (give the --run-dir of `synthloop run`)"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("recipe"), dict):
        raise ReviewError(f"{run_root}/manifest.json is not a run's manifest; give the --run-dir of `synthloop run`")
    return manifest


def pick_round(run_root: Path, wanted: int | None) -> int:
    rounds = finished_rounds(run_root)
    if not rounds:
        raise ReviewError(
            f"{run_root} has no round with finished curation yet: nothing to review; run `synthloop run` (or wait "
            "for its first round's curation to finish)"
        )
    if wanted is None:
        return rounds[-1]
    if wanted not in rounds:
        raise ReviewError(f"round {wanted} of {run_root} has no finished curation; rounds to review: {rounds}")
    return wanted


def read_table(directory: Path) -> pa.Table:
    tables = [pq.read_table(p) for p in sorted(directory.glob("part-*.parquet"))]
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


class ReviewRound:
    def __init__(self, run_root: Path, number: int, audit_size: int | None = None):
        manifest = check_run(run_root)
        self.run_root, self.round = run_root, number
        self.recipe = manifest["recipe"]
        rdir = run_root / "rounds" / f"{number:02d}"
        self.rdir = rdir
        table = pa.concat_tables([read_table(rdir / "curated"), read_table(rdir / "rejected")])
        # An exact duplicate has its kept twin's id (content ids): each id is one row to decide, the
        # curated one where there is one (curated/ comes first), else the first rejected copy.
        all_ids = table.column("id").to_pylist()
        first = {row_id: i for i, row_id in reversed(list(enumerate(all_ids)))}
        self.duplicates = len(all_ids) - len(first)
        self.table = table.take(sorted(first.values())) if self.duplicates else table
        ids = self.table.column("id").to_pylist()
        skills = self.table.column("skill").to_pylist()
        verdict_lists = self.table.column("verdicts").to_pylist()
        self.index = {row_id: i for i, row_id in enumerate(ids)}
        self.facts: dict[str, RowFacts] = {}
        population: dict[str, tuple[bool, str]] = {}
        pressing: list[tuple[float, str]] = []
        self.why: dict[str, str] = {}
        thresholds = Thresholds.from_recipe(self.recipe)
        for row_id, skill, raw in zip(ids, skills, verdict_lists, strict=True):
            verdicts = [Verdict(**v) for v in raw or []]
            kept = all(v.keep for v in verdicts if v.stage != "human")
            self.facts[row_id] = RowFacts(kept, skill, verdicts)
            if any(v.stage == UNANSWERED for v in verdicts):
                continue  # a failed call or an unparsable reply: no answer to judge
            population[row_id] = (kept, skill)
            found = disagreement(verdicts, thresholds)
            if found:
                pressing.append((found[0], row_id))
                self.why[row_id] = found[1]
        seed = int(self.recipe.get("seed", 0))
        self.log = DecisionLog(run_root)
        self.follower = LogFollower(self.log, number)  # read once here; the server folds in what is added
        self.follower.refresh()  # a damaged log is said here, before anything is served
        started = bool(self.follower.fold.current())
        self.audit: AuditSlice = audit_slice(
            run_root / "review", number, population, audit_size, seed * 1000 + number, started
        )
        self.audited = set(self.audit.rows)
        self.queue = review_order(pressing, self.audit.rows)
        self._parents: dict[str, dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    def row(self, row_id: str) -> dict[str, Any]:
        i = self.index.get(row_id)
        if i is None:
            raise ReviewError(f"row {row_id!r} is not a row of round {self.round}")
        row = self.table.slice(i, 1).to_pylist()[0]
        row["kept_by_curation"] = self.facts[row_id].kept
        row["audit"] = row_id in self.audited
        row["why"] = self.why.get(row_id)
        row["parents"] = [self.parent(p) for p in row.get("parent_ids") or []]
        return row

    def parent(self, parent_id: str) -> dict[str, Any]:
        """A parent row's gist, from this round's other shard folders (the problems a dataset task wrote, a
        prompt task's earlier steps) or the rows under review."""
        if parent_id in self.index:
            row = self.table.slice(self.index[parent_id], 1).to_pylist()[0]
            return {"id": parent_id, "kind": row["kind"], "question": row["question"], "answer": row["answer"]}
        if self._parents is None:
            self._parents = {}
            for marker in self.rdir.glob("*/_SUCCESS.json"):
                if marker.parent.name in ("curated", "rejected", "train"):
                    continue
                table = read_table(marker.parent)
                for row in table.select(["id", "kind", "question", "answer"]).to_pylist():
                    self._parents[row["id"]] = row
        return self._parents.get(parent_id, {"id": parent_id, "kind": "unknown", "question": "(not in this round)"})

    def fields(self, row_id: str) -> dict[str, Any]:
        """The row's answer and reasoning (what an edit is compared with)."""
        i = self.index[row_id]
        return {
            "answer": self.table.column("answer")[i].as_py(),
            "reasoning": self.table.column("reasoning")[i].as_py(),
        }

    def can_accept(self, row_id: str, edit: dict[str, str]) -> None:
        if row_id not in self.index:
            raise ReviewError(f"row_id: {row_id!r} is not a row of round {self.round}")
        if self.fields(row_id)["answer"] is None and not edit.get("answer", "").strip():
            raise ReviewError(
                "this row has no answer (the call failed or its reply could not be read): edit it to give one "
                "(key e), or reject it"
            )

    def figures(self) -> dict[str, Any]:
        humans = {}
        for row_id, human in human_verdicts(self.log.read(), self.round).items():
            if row_id in self.index:  # an edit that changes nothing (a log written by hand) is no correction
                humans[row_id] = replace(human, edit=changed_fields(self.fields(row_id), human.edit))
        audited = [row_id for row_id in self.audit.rows if row_id in humans]
        return {
            "round": self.round,
            "rows": len(self),
            "decided": len(humans),
            "audit": {"size": len(self.audit.rows), "decided": len(audited), "strata": self.audit.strata},
            "stages": stage_agreement(self.facts, self.audit, humans),
            "reviewers": reviewer_alpha(humans),
            "kept_error": kept_error_estimate(self.facts, self.audit, humans),
            "human": {
                "accepted": sum(h.keep for h in humans.values()),
                "rejected": sum(not h.keep for h in humans.values()),
                "edited": sum(bool(h.edit) for h in humans.values()),
                "overturned": sum(h.keep != self.facts[row_id].kept for row_id, h in humans.items()),
            },
        }


def review_figures(run_root: Path) -> dict[str, dict[str, Any]]:
    """Every reviewed round's figures (round number as text -> figures), for metrics, report and card.
    Rounds nobody reviewed are left out; a damaged decision log raises ReviewError."""
    log = DecisionLog(run_root)
    if not log.path.exists():
        return {}
    reviewed = {d.round for d in log.read()}
    return {
        str(number): ReviewRound(run_root, number).figures()
        for number in finished_rounds(run_root)
        if number in reviewed
    }
