"""The one record that flows through every stage, from the teacher call to the training set.

Provenance is real attributes, not a metadata dict: any row of a training shard can be traced to
the round, teacher, task template, recipe and request that made it, and to every curation verdict."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    # Arrow's default (mimalloc) pool keeps freed pages: a stream of millions of rows, read and written a
    # batch at a time, grew by a tenth per million rows; the system allocator stays flat (bench/scale.py).
    pa.set_memory_pool(pa.system_memory_pool())

Source = Literal["synthetic", "human", "reference"]
"""`reference`: ground-truth items written by the skills (the embedded golden set), treated as human data."""


HUMAN = "human"  # the stage of a reviewer's verdict, which overrides every other stage's


@dataclass(slots=True)
class Verdict:
    stage: str  # e.g. "verify", "dedup", "decontaminate"
    keep: bool
    reason: str | None = None  # why a row was rejected ("wrong_answer", "duplicate", ...)
    score: float | None = None
    detail: str | None = None  # free text for a reader: the judge's reason, the kept duplicate's id, a test's error


@dataclass(slots=True)
class Message:
    role: str
    content: str


@dataclass(slots=True)
class Record:
    kind: str  # "solution", "problem", "textbook", "refusal", ...
    skill: str
    question: str  # the problem as the student will see it
    source: Source
    round: int
    difficulty: int | None = None
    messages: list[Message] = field(default_factory=list)  # the prompt sent to the teacher
    reasoning: str = ""  # the teacher's chain of thought, without the final answer
    answer: str | None = None  # the teacher's final answer, as parsed
    reference_answer: str | None = None
    raw_output: str = ""  # the teacher's text exactly as returned
    error: str | None = None  # a teacher call that failed after its retries
    teacher_backend: str = ""
    teacher_model: str = ""
    task: str = ""
    template_version: str = ""
    recipe_hash: str = ""
    request_id: str = ""  # content address of the teacher request (the cache key)
    sample_index: int = 0  # which of the call's `n` samples (or of the items a list-making task returned)
    prompt_tokens: int | None = None  # the call's usage, on the call's first row only (so sums are exact)
    completion_tokens: int | None = None
    attempts: int | None = None  # tries the call took (1: first time)
    parse_status: str | None = None  # schema (enforced by the server) | parsed | repaired | failed
    seed: int | None = None  # generator seed and index of a procedural problem
    index: int | None = None
    parent_ids: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    id: str = ""

    def __post_init__(self) -> None:
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and not value.isascii():
                setattr(self, name, valid_unicode(value))
        if not self.id:
            self.id = content_id(self.kind, self.skill, self.question, self.reasoning, self.answer, self.source)

    @property
    def kept(self) -> bool:
        """Every stage kept the row, or a human decided: a `human` verdict overrides the stages."""
        human = self.human_verdict
        return human.keep if human is not None else all(v.keep for v in self.verdicts)

    @property
    def reject_reason(self) -> str | None:
        human = self.human_verdict
        if human is not None:
            return None if human.keep else (human.reason or HUMAN)
        return next((v.reason or v.stage for v in self.verdicts if not v.keep), None)

    @property
    def human_verdict(self) -> Verdict | None:
        return next((v for v in reversed(self.verdicts) if v.stage == HUMAN), None)

    def add_verdict(
        self, stage: str, keep: bool, reason: str | None = None, score: float | None = None, detail: str | None = None
    ) -> None:
        self.verdicts.append(Verdict(stage, keep, reason, score, detail))


_TEXT_FIELDS = ("question", "reasoning", "answer", "raw_output", "reference_answer", "error")


def valid_unicode(text: str) -> str:
    """`text` with lone surrogates (what undecodable bytes become) replaced by U+FFFD, so that every
    row can be hashed and written to Parquet whatever a teacher or a file handed us."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)  # one per lone surrogate


def content_id(*parts: object) -> str:
    digest = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode())
    return digest.hexdigest()[:20]


_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_VERDICT = pa.struct(
    [
        ("stage", pa.string()),
        ("keep", pa.bool_()),
        ("reason", pa.string()),
        ("score", pa.float64()),
        ("detail", pa.string()),
    ]
)
_TYPES = {
    "difficulty": pa.int32(),
    "round": pa.int32(),
    "sample_index": pa.int32(),
    "prompt_tokens": pa.int64(),
    "completion_tokens": pa.int64(),
    "attempts": pa.int32(),
    "seed": pa.int64(),
    "index": pa.int64(),
    "messages": pa.list_(_MESSAGE),
    "parent_ids": pa.list_(pa.string()),
    "verdicts": pa.list_(_VERDICT),
}
SCHEMA = pa.schema([(f.name, _TYPES.get(f.name, pa.string())) for f in fields(Record)])


def to_table(records: list[Record]) -> pa.Table:
    """Column by column (a tenth of the time `asdict` per row takes), nested structs as plain dicts."""
    columns = {}
    for name in SCHEMA.names:
        values = [getattr(r, name) for r in records]
        if name == "messages":
            values = [[{"role": m.role, "content": m.content} for m in turns] for turns in values]
        elif name == "verdicts":
            values = [[_verdict_dict(v) for v in verdicts] for verdicts in values]
        columns[name] = pa.array(values, SCHEMA.field(name).type)
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def with_verdict_of(table: pa.Table, stage: str) -> np.ndarray:
    """Which rows of an Arrow table of records hold a verdict of `stage` (read from the columns)."""
    verdicts = table.column("verdicts").combine_chunks()
    marked = pc.equal(verdicts.flatten().field("stage"), stage).to_numpy(zero_copy_only=False)
    rows = np.zeros(table.num_rows, dtype=bool)
    rows[pc.list_parent_indices(verdicts).to_numpy()[marked]] = True
    return rows


def _verdict_dict(v: Verdict) -> dict[str, object]:
    return {"stage": v.stage, "keep": v.keep, "reason": v.reason, "score": v.score, "detail": v.detail}


def from_table(table: pa.Table) -> list[Record]:
    rows = table.to_pylist()
    for row in rows:
        row["messages"] = [Message(**m) for m in row["messages"] or []]
        row["verdicts"] = [Verdict(**v) for v in row["verdicts"] or []]
        row["parent_ids"] = row["parent_ids"] or []
    return [Record(**row) for row in rows]
