"""Human review decisions: an append-only log in the run directory, durable the moment one is made.

`RUN/review/decisions.jsonl` holds one JSON object per line (or a batch of them made together). A line
is never rewritten: an undo is a new line naming the decision it takes back, and two reviewers deciding
the same row both stay (the disagreement is shown, and counted in the agreement figures). Each append
takes an exclusive lock, writes one line and fsyncs before the server answers, so a decision the page
saw acknowledged survives a kill -9 of the server or a power cut; a line cut short by a crash was never
acknowledged and is dropped on the next append. Reviewer names are labels, not accounts: the server's
token is the boundary of who may decide."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Action = Literal["accept", "reject", "undo"]
ACTIONS = ("accept", "reject", "undo")
EDITABLE = ("answer", "reasoning")
MAX_TEXT = 64 * 1024  # an edit or a reason longer than this is refused (a paste gone wrong)
MAX_LINE = 16 * 1024 * 1024  # one log line (a bulk action) at most: every reader holds a line in memory


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
    """A new decision (its id and time made here), checked field by field; a bad one raises ReviewError
    naming the field."""
    if isinstance(reviewer, str):
        reviewer = " ".join(reviewer.split())
    if action == "reject" and isinstance(reason, str):
        reason = " ".join(reason.split())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() // 1000 % 1_000_000:06d}Z"
    decision = Decision(round_, row_id, reviewer, action, reason, dict(edit or {}), undoes, uuid.uuid4().hex, stamp)  # type: ignore[arg-type]
    problem = check(decision)
    if problem:
        raise ReviewError(problem)
    return decision


def text_problem(name: str, value: Any, limit: int = MAX_TEXT, empty: bool = False) -> str | None:
    if not isinstance(value, str):
        return f"{name}: must be text"
    if len(value) > limit:
        return f"{name}: at most {limit} characters"
    if not empty and not value.strip():
        return f"{name}: cannot be empty"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name}: not valid text (a lone surrogate)"
    return None


def check(d: Decision) -> str | None:
    """What is wrong with a decision, or None: the same rules for one being made and one read back."""
    if not isinstance(d.round, int) or isinstance(d.round, bool) or d.round < 1:
        return "round: must be a round number (1 or more)"
    if d.action not in ACTIONS:
        return f"action: {d.action!r} is not one of {', '.join(ACTIONS)}"
    if (problem := text_problem("reviewer", d.reviewer, 100)) is not None:
        return "reviewer: give a name (it is written beside every decision)" if "empty" in problem else problem
    if text_problem("row_id", d.row_id, 200) is not None:
        return "row_id: give the id of a row of this round"
    if text_problem("id", d.id, 200) or text_problem("time", d.time, 100):
        return "id and time: missing"
    if d.action == "reject":
        if d.reason is None or (isinstance(d.reason, str) and not d.reason.strip()):
            return f"reason: a rejection needs a reason ({', '.join(REJECT_REASONS)}, or your own words)"
        if (problem := text_problem("reason", d.reason)) is not None:
            return problem
    elif d.reason is not None:
        return "reason: only a rejection has a reason"
    if not isinstance(d.edit, dict):
        return "edit: give {answer, reasoning}"
    if d.edit and d.action != "accept":
        return "edit: only an accepted row can be edited (an edit is an accept of the rewritten row)"
    for key, value in d.edit.items():
        if key not in EDITABLE:
            return f"edit: {key!r} cannot be edited; only {' and '.join(EDITABLE)}"
        if (problem := text_problem(f"edit.{key}", value, empty=key != "answer")) is not None:
            if "empty" in problem:
                return "edit.answer: the answer cannot be empty; reject the row instead (key r)"
            return problem
    if d.action == "undo" and not (isinstance(d.undoes, str) and d.undoes):
        return "undoes: an undo names the decision it takes back"
    if d.action != "undo" and d.undoes is not None:
        return "undoes: only an undo names another decision"
    return None


class DecisionLog:
    """The run's decision log. Safe for several servers (and the loop reading it) at once. A line holds one
    decision, or `{"batch": [...]}`: several made together (a bulk action, a bulk undo), which one write
    makes durable or, cut short, drops whole."""

    def __init__(self, run_root: Path):
        self.path = run_root / "review" / "decisions.jsonl"

    def append(self, decisions: Decision | list[Decision]) -> None:
        many = decisions if isinstance(decisions, list) else [decisions]
        if not many:
            return
        data = asdict(many[0]) if len(many) == 1 else {"batch": [asdict(d) for d in many]}
        line = (json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n").encode()
        if len(line) > MAX_LINE:
            raise ReviewError(
                f"this action would write {len(line) >> 20} MiB to the decision log (at most {MAX_LINE >> 20} MiB at "
                "once): decide fewer rows at once, or give a shorter reason"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            end_torn_tail(fd, self.path)
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
        return parse_lines(data, str(self.path), 0)[0]


def parse_lines(data: bytes, where: str, first_line: int) -> tuple[list[Decision], int]:
    """The decisions in `data` (log bytes from the start of a line) and how many bytes they took. A last
    line without its newline counts if it is a whole decision (a hand-edited file), else it is torn."""
    decisions: list[Decision] = []
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the data ends with a newline
    for number, raw in enumerate(lines, first_line + 1):
        if raw.strip(b"\0 \t\r"):
            decisions += parse_line(raw, f"{where}:{number}")
    used = len(data) - len(tail)
    if tail.strip(b"\0 \t\r"):
        try:
            decisions += parse_line(tail, f"{where}:{first_line + len(lines) + 1}")
            used = len(data)
        except ReviewError:
            pass  # torn: written by a process killed mid-line, never acknowledged
    return decisions, used


def end_torn_tail(fd: int, path: Path) -> None:
    """Before an append: a last line without its newline is ended if it is a whole decision, else cut
    off (it was never acknowledged), however long it is, and kept in a file beside the log."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - (1 << 20))
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            start += cut + 1
            break
        end = start
    else:
        start = 0
    if start == size:
        return
    tail = os.pread(fd, size - start, start)
    try:
        parse_line(tail, "tail")
        os.write(fd, b"\n")
    except ReviewError:
        kept = keep_aside(path, tail)
        os.ftruncate(fd, start)
        print(
            f"synthloop: the decision log ended in {len(tail)} bytes that are not a whole decision (a write cut short, "
            f"never acknowledged); moved to {kept}",
            file=sys.stderr,
            flush=True,
        )


def keep_aside(log: Path, tail: bytes) -> Path:
    """Nothing is thrown away: what is cut from the log's end goes to a file beside it first."""
    aside = log.with_name(f"{log.name}.cut-{time.time_ns()}")
    with aside.open("wb") as f:
        f.write(tail)
        f.flush()
        os.fsync(f.fileno())
    return aside


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_line(raw: bytes, where: str) -> list[Decision]:
    """One line's decisions (a batch line holds several), each checked as a new one is."""
    try:
        if len(raw) > MAX_LINE:
            raise ValueError(f"a line of {len(raw)} bytes, over {MAX_LINE}")
        data = json.loads(raw.decode("utf-8"))
        items = data.get("batch") if isinstance(data, dict) and set(data) == {"batch"} else [data]
        if not isinstance(items, list) or not items:
            raise ValueError("an empty or malformed batch")
        decisions = []
        for item in items:
            if not isinstance(item, dict):
                raise ValueError("not an object")
            decision = Decision(**item)
            if (problem := check(decision)) is not None:
                raise ValueError(problem)
            decisions.append(decision)
    except (ValueError, TypeError, RecursionError) as err:
        raise ReviewError(
            f"{where}: damaged decision ({' '.join(str(err).split())[:120]}); the log is append-only: restore the "
            "line from a backup or delete it knowingly"
        ) from None
    return decisions


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
        self.undone: set[str] = set()  # ids of decisions taken back

    def add(self, d: Decision) -> None:
        if d.id in self.by_id:
            return  # the same decision twice (a line restored from a backup twice): it counts once
        self.by_id[d.id] = d
        if self.round is not None and d.round != self.round:
            return
        if d.action == "undo":
            target = self.by_id.get(d.undoes or "")
            if target is not None and target.reviewer == d.reviewer and target.action != "undo":
                stack = self.stacks.get((target.row_id, target.reviewer), [])
                if target in stack:
                    stack.remove(target)
                    self.undone.add(target.id)
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
        """Fold in what was appended since the last look; a damaged line raises ReviewError (and is met
        again on the next look: nothing after it is trusted)."""
        if not self.log.path.exists():
            return self.fold
        with self.log.path.open("rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            f.seek(self.offset)
            data = f.read()
        decisions, used = parse_lines(data, str(self.log.path), self.lines)
        for decision in decisions:
            self.decisions.append(decision)
            self.fold.add(decision)
        self.lines += data[:used].count(b"\n")
        self.offset += used
        return self.fold


def changed_fields(row: dict[str, Any] | Any, edit: dict[str, str]) -> dict[str, str]:
    """The part of `edit` that changes the row (`row`: a Record or a dict of its fields), whitespace aside:
    an edit equal to the original, or a blank reasoning for a row with none, is no edit."""

    def norm(value: Any) -> str:
        return " ".join(str(value or "").split())

    def field_of(key: str) -> Any:
        return row.get(key) if isinstance(row, dict) else getattr(row, key, None)

    return {key: value for key, value in edit.items() if norm(value) != norm(field_of(key))}


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
