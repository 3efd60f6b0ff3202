"""Human review decisions: an append-only log in the run directory, durable the moment one is made.

`RUN/review/decisions.jsonl` holds one JSON object per line. A line is never rewritten: an undo is a
new line naming the decision it takes back, and two reviewers deciding the same row both stay (the
disagreement is shown, and counted in the agreement figures). Each append takes an exclusive lock,
writes one line and fsyncs before the server answers, so a decision the page saw acknowledged
survives a kill -9 of the server or a power cut; a line cut short by a crash was never acknowledged
and is dropped on the next append."""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Action = Literal["accept", "reject", "undo"]
ACTIONS = ("accept", "reject", "undo")
EDITABLE = ("answer", "reasoning")
MAX_TEXT = 64 * 1024  # an edit or a reason longer than this is refused (a paste gone wrong)


class ReviewError(ValueError):
    """A decision or a decision log that cannot be used: one line that says what to do."""


@dataclass(frozen=True, slots=True)
class Decision:
    round: int
    row_id: str
    reviewer: str
    action: Action
    reason: str | None = None  # why a row was rejected: one of REJECT_REASONS or free text
    edit: dict[str, str] = field(default_factory=dict)  # accept with the answer and/or reasoning rewritten
    undoes: str | None = None  # an undo: the id of the decision it takes back
    id: str = ""
    time: str = ""  # UTC, ISO 8601


REJECT_REASONS = (
    "wrong_answer",
    "wrong_reasoning",
    "unclear_question",
    "unsafe",
    "pii",
    "duplicate",
    "bad_format",
)


def new_decision(
    round_: int,
    row_id: str,
    reviewer: str,
    action: str,
    reason: str | None = None,
    edit: dict[str, Any] | None = None,
    undoes: str | None = None,
) -> Decision:
    """A decision checked field by field; a bad one raises ReviewError naming the field."""
    reviewer = " ".join(str(reviewer or "").split())
    if not reviewer:
        raise ReviewError("reviewer: give a name (it is written beside every decision)")
    if len(reviewer) > 100:
        raise ReviewError("reviewer: at most 100 characters")
    if action not in ACTIONS:
        raise ReviewError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    if not isinstance(row_id, str) or not row_id or len(row_id) > 200:
        raise ReviewError("row_id: give the id of a row of this round")
    if action == "reject":
        reason = " ".join(str(reason or "").split())
        if not reason:
            raise ReviewError(f"reason: a rejection needs a reason ({', '.join(REJECT_REASONS)}, or your own words)")
        if len(reason) > MAX_TEXT:
            raise ReviewError(f"reason: at most {MAX_TEXT} characters")
    elif reason is not None:
        raise ReviewError("reason: only a rejection has a reason")
    edit = dict(edit or {})
    if edit and action != "accept":
        raise ReviewError("edit: only an accepted row can be edited (an edit is an accept of the rewritten row)")
    for key, value in edit.items():
        if key not in EDITABLE:
            raise ReviewError(f"edit: {key!r} cannot be edited; only {' and '.join(EDITABLE)}")
        if not isinstance(value, str):
            raise ReviewError(f"edit.{key}: must be text")
        if len(value) > MAX_TEXT:
            raise ReviewError(f"edit.{key}: at most {MAX_TEXT} characters")
    if "answer" in edit and not edit["answer"].strip():
        raise ReviewError("edit.answer: the answer cannot be empty; reject the row instead (key r)")
    if action == "undo" and not undoes:
        raise ReviewError("undoes: an undo names the decision it takes back")
    if action != "undo" and undoes:
        raise ReviewError("undoes: only an undo names another decision")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() // 1000 % 1_000_000:06d}Z"
    return Decision(round_, row_id, reviewer, action, reason, edit, undoes, uuid.uuid4().hex, stamp)  # type: ignore[arg-type]


class DecisionLog:
    """The run's decision log. Safe for several servers (and the loop reading it) at once."""

    def __init__(self, run_root: Path):
        self.path = run_root / "review" / "decisions.jsonl"

    def append(self, decision: Decision) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(asdict(decision), ensure_ascii=False, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            drop_torn_tail(fd)
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        fsync_dir(self.path.parent)

    def read(self) -> list[Decision]:
        """Every decision in the order made. A damaged line (other than a torn last one, which was never
        acknowledged) raises ReviewError naming the file and line: the log is not trusted in part."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)  # an append in progress finishes first
            data = f.read()
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":
            lines = lines[:-1]  # torn: written by a process killed mid-line, never acknowledged
        return [parse_line(raw, f"{self.path}:{number}") for number, raw in enumerate(lines, 1) if raw.strip()]


def drop_torn_tail(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size == 0:
        return
    chunk = min(size, 1 << 20)
    tail = os.pread(fd, chunk, size - chunk)
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    os.ftruncate(fd, size - chunk + cut + 1 if cut >= 0 else (0 if chunk == size else size))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_line(raw: bytes, where: str) -> Decision:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        decision = Decision(**data)
        texts = (decision.row_id, decision.reviewer, decision.id, decision.time)
        if decision.action not in ACTIONS or not isinstance(decision.round, int) or not decision.id:
            raise ValueError("not a decision")
        if not all(isinstance(t, str) for t in texts) or not isinstance(decision.edit, dict):
            raise ValueError("a field has the wrong type")
        if not all(k in EDITABLE and isinstance(v, str) for k, v in decision.edit.items()):
            raise ValueError("an edit names a field that cannot be edited")
    except (ValueError, TypeError) as err:
        raise ReviewError(
            f"{where}: damaged decision ({' '.join(str(err).split())[:120]}); the log is append-only: restore the "
            "line from a backup or delete it knowingly"
        ) from None
    return decision


@dataclass(frozen=True)
class HumanVerdict:
    """What the reviewers of one row decided, all of their current decisions taken together."""

    keep: bool
    reason: str | None
    edit: dict[str, str]
    decisions: tuple[Decision, ...]  # each reviewer's current decision, oldest first

    @property
    def reviewers(self) -> list[str]:
        return [d.reviewer for d in self.decisions]

    @property
    def conflict(self) -> bool:
        return len({(d.action, json.dumps(d.edit, sort_keys=True)) for d in self.decisions}) > 1

    def detail(self) -> str:
        parts = [
            f"{d.reviewer} {d.action}" + (f" ({d.reason})" if d.reason else "") + (" with an edit" if d.edit else "")
            for d in self.decisions
        ]
        return "; ".join(parts) + (" (reviewers disagree: kept only if all accept)" if self.conflict else "")


class DecisionFold:
    """Every row's current decision per reviewer, folded in one decision at a time: undos take back the
    decision they name (one may take back only one's own), restoring that reviewer's one before."""

    def __init__(self, round_: int | None = None):
        self.round = round_
        self.by_id: dict[str, Decision] = {}
        self.stacks: dict[tuple[str, str], list[Decision]] = {}
        self.reviewers: dict[str, dict[str, None]] = {}  # row id -> reviewers who decided it, in order

    def add(self, d: Decision) -> None:
        self.by_id[d.id] = d
        if self.round is not None and d.round != self.round:
            return
        if d.action == "undo":
            target = self.by_id.get(d.undoes or "")
            if target is not None and target.reviewer == d.reviewer:
                stack = self.stacks.get((target.row_id, target.reviewer), [])
                if target in stack:
                    stack.remove(target)
            return
        self.stacks.setdefault((d.row_id, d.reviewer), []).append(d)
        self.reviewers.setdefault(d.row_id, {})[d.reviewer] = None

    def of_row(self, row_id: str) -> dict[str, Decision]:
        """reviewer -> current decision on `row_id`."""
        out = {}
        for reviewer in self.reviewers.get(row_id, {}):
            stack = self.stacks.get((row_id, reviewer))
            if stack:
                out[reviewer] = stack[-1]
        return out

    def current(self) -> dict[str, dict[str, Decision]]:
        return {row_id: by for row_id in self.reviewers if (by := self.of_row(row_id))}


def current_decisions(decisions: list[Decision], round_: int | None = None) -> dict[str, dict[str, Decision]]:
    """row id -> reviewer -> that reviewer's current decision (undos taken back in order)."""
    fold = DecisionFold(round_)
    for d in decisions:
        fold.add(d)
    return fold.current()


class LogFollower:
    """Reads only what was appended to the log since the last look (by this or any other process) and folds
    it in: a server stays fast however long the log grows."""

    def __init__(self, log: DecisionLog, round_: int | None = None):
        self.log, self.offset, self.lines = log, 0, 0
        self.fold = DecisionFold(round_)
        self.decisions: list[Decision] = []

    def refresh(self) -> DecisionFold:
        if not self.log.path.exists():
            return self.fold
        with self.log.path.open("rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # complete lines only: a torn tail was never acknowledged
        for raw in data[:end].split(b"\n")[:-1]:
            self.lines += 1
            if raw.strip():
                decision = parse_line(raw, f"{self.log.path}:{self.lines}")
                self.decisions.append(decision)
                self.fold.add(decision)
        self.offset += end
        return self.fold


def human_verdicts(decisions: list[Decision], round_: int | None = None) -> dict[str, HumanVerdict]:
    """row id -> the humans' verdict. Reviewers who disagree fail closed: the row is kept only if every
    one of them accepts it; the newest edit among accepting reviewers is the row's text."""
    out = {}
    for row_id, per_reviewer in current_decisions(decisions, round_).items():
        ordered = tuple(sorted(per_reviewer.values(), key=lambda d: d.time))
        rejects = [d for d in ordered if d.action == "reject"]
        edits = [d for d in ordered if d.edit]
        out[row_id] = HumanVerdict(
            keep=not rejects,
            reason=rejects[-1].reason if rejects else None,
            edit=dict(edits[-1].edit) if edits and not rejects else {},
            decisions=ordered,
        )
    return out
