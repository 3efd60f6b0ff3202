"""Measured trust: how often each curation stage is wrong, on rows whose right decision is known.

Each stage runs alone on a fresh copy of the labelled sample, so its errors are its own (in a real run
an earlier stage may hide a later one's mistakes). A stage "flags" a row when it rejects it (or, for
PII, when it redacts something); a row labelled `drop` should be flagged. Per stage: true/false
positives and negatives, precision, recall, agreement with the labels, and the false-positive and
false-negative rows themselves. A pairwise judge also reports how often its two orders agreed.

Labels. `label` (keep/drop, or `correct: true/false`) says whether the row's answer is right: it is
what the correctness stages (verifiers, self-consistency, reward model, judges) are scored on.
`labels: {stage: keep|drop}` labels one stage (e.g. `{"dedup": "drop"}` on a planted duplicate, or
`{"pii": "drop"}` on a row with an e-mail address). A stage with no labels on any row is reported with
its counts only.

`embedded_sample` builds a sample with exact labels for free from the skills: reference solutions with
a share of answers corrupted on purpose (label drop), a share of right answers written another way
("12.0" for "12": label keep), questions leaked from held-out probes (for decontamination) and
duplicate questions (for dedup)."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synthloop.curation.base import Stage, question_key
from synthloop.curation.judge import PairwiseJudge
from synthloop.records import Record
from synthloop.registry import SKILLS
from synthloop.skills.answers import parse_number
from synthloop.storage.input_files import OVERSIZE, InputFileError, read_rows, text_field
from synthloop.teachers.oracle import corrupt

CORRECTNESS_STAGES = ("verify", "verify_code", "self_consistency", "reward", "judge", "judge_pairwise")
FLAG_REASONS = ("pii_redacted",)  # a kept verdict that still means the stage found something
LABEL_VALUES = {"keep": "keep", "drop": "drop", "correct": "keep", "incorrect": "drop", True: "keep", False: "drop"}
SHOWN_ROWS = 20  # false positives / negatives listed per stage in the report (all are in the JSON)


@dataclass
class Labelled:
    record: Record
    label: str | None  # keep / drop for the correctness stages; None: unlabelled
    stage_labels: dict[str, str] = field(default_factory=dict)

    def label_for(self, stage: str) -> str | None:
        if stage in self.stage_labels:
            return self.stage_labels[stage]
        return self.label if stage in CORRECTNESS_STAGES else None


@dataclass
class StageAudit:
    stage: str
    rows: int
    flagged: int
    labelled: int
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    precision: float | None = None
    recall: float | None = None
    agreement: float | None = None
    orders_agreed: str | None = None  # a pairwise judge: "a of b" pairs gave the same winner both ways
    false_positives: list[dict[str, Any]] = field(default_factory=list)  # flagged, labelled keep
    false_negatives: list[dict[str, Any]] = field(default_factory=list)  # not flagged, labelled drop

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def flagged(record: Record, stage: str) -> tuple[bool, str | None, str | None]:
    """Whether `stage` flagged the row, with its reason and detail."""
    for verdict in record.verdicts:
        if verdict.stage == stage and (not verdict.keep or verdict.reason in FLAG_REASONS):
            return True, verdict.reason, verdict.detail
    return False, None, None


def audit_stage(stage: Stage, sample: list[Labelled]) -> StageAudit:
    rows = [copy.deepcopy(item.record) for item in sample]
    for record in rows:
        record.verdicts.clear()
    list(stage.run(rows))
    result = StageAudit(stage.name, len(rows), 0, 0)
    for item, record in zip(sample, rows, strict=True):
        hit, reason, detail = flagged(record, stage.name)
        result.flagged += hit
        label = item.label_for(stage.name)
        if label is None:
            continue
        result.labelled += 1
        shown = {"id": item.record.id, "question": record.question[:200], "answer": (record.answer or "")[:200]}
        if hit and label == "drop":
            result.tp += 1
        elif hit:
            result.fp += 1
            result.false_positives.append({**shown, "reason": reason, "detail": detail})
        elif label == "drop":
            result.fn += 1
            result.false_negatives.append(shown)
        else:
            result.tn += 1
    if result.labelled:
        result.precision = result.tp / (result.tp + result.fp) if result.tp + result.fp else None
        result.recall = result.tp / (result.tp + result.fn) if result.tp + result.fn else None
        result.agreement = (result.tp + result.tn) / result.labelled
    if isinstance(stage, PairwiseJudge):
        result.orders_agreed = f"{stage.orders_agreed} of {stage.pairs}"
    return result


def audit(stages: list[Stage], sample: list[Labelled]) -> list[StageAudit]:
    return [audit_stage(stage, sample) for stage in stages]


def read_labelled(
    path: str | Path, what: str = "labelled sample", keep_oversize: bool = False, require_answer: bool = False
) -> list[Labelled]:
    """A labelled sample from JSONL or Parquet: question, answer, and optionally reasoning,
    reference_answer, skill, kind, label (or correct) and labels. With `keep_oversize`, a row with a
    field over the size cap comes back as a rejected record (reason `oversize_field`); with
    `require_answer`, so does a row without an answer (`missing_answer`), which no stage could judge
    and no student should learn from."""
    return list(labelled_rows(read_rows(path, what, keep_oversize), require_answer))


def labelled_rows(rows: Iterable[tuple[dict[str, Any], str]], require_answer: bool = False) -> Iterator[Labelled]:
    """`read_labelled` one row at a time, from rows as `read_rows` or `iter_rows` gives them."""
    for row, where in rows:
        if OVERSIZE in row:
            record = Record(kind="solution", skill="", question="", source="synthetic", round=0)
            record.add_verdict("input", False, "oversize_field", None, f"{where}: {row[OVERSIZE]}")
            yield Labelled(record, None, {})
            continue
        record = Record(
            kind=optional_text(row, "kind", where) or "solution",
            skill=optional_text(row, "skill", where) or "",
            question=text_field(row, where, ("question", "problem", "prompt")),
            source="synthetic",
            round=0,
            reasoning=optional_text(row, "reasoning", where) or "",
            answer=optional_text(row, "answer", where),
            reference_answer=optional_text(row, "reference_answer", where),
        )
        if require_answer:
            reject_unanswered(record, where)
        label = row.get("label", row.get("correct"))
        stage_labels = row.get("labels") or {}
        if not isinstance(stage_labels, dict):
            raise InputFileError(f"{where}: 'labels' must map stage names to keep/drop")
        yield Labelled(
            record,
            None if label is None else label_value(label, where),
            {stage: label_value(value, where) for stage, value in stage_labels.items()},
        )


def optional_text(row: dict[str, Any], key: str, where: str) -> str | None:
    """A text field that may be absent or null; a number is taken as its text ("answer": 12), anything
    else (a list, an object, true) is a mistake in the file, not something to stringify."""
    value = row.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    kind = {list: "a list", dict: "an object", bool: "true or false"}.get(type(value), type(value).__name__)
    raise InputFileError(f"{where}: {key!r} must be text or a number, not {kind}")


def reject_unanswered(record: Record, where: str) -> None:
    if record.kept and not (record.answer or "").strip():
        record.add_verdict("input", False, "missing_answer", None, f"{where}: no 'answer'")


def label_value(value: Any, where: str) -> str:
    key = value.strip().lower() if isinstance(value, str) else value
    if key not in LABEL_VALUES:
        raise InputFileError(f"{where}: label {value!r} is not one of keep, drop, correct, incorrect, true, false")
    return LABEL_VALUES[key]


@dataclass
class EmbeddedSample:
    rows: list[Labelled]
    probes: list[str]  # held-out questions the sample is decontaminated against


def embedded_sample(
    rows_per_skill: int = 100, wrong: float = 0.3, reformatted: float = 0.1, leaked: float = 0.05, seed: int = 0
) -> EmbeddedSample:
    """Reference solutions of every embedded skill (difficulties 1-5 in turn), with exact labels:
    `wrong` of the answers corrupted (drop), `reformatted` of them right but written another way (keep),
    `leaked` of the questions copied from held-out probes, verbatim or lightly edited (drop, for
    decontamination), and every repeat of a question (drop, for dedup)."""
    rng = random.Random(seed)
    rows: list[Labelled] = []
    probes: list[str] = []
    for name in SKILLS.names():
        skill = SKILLS.get(name)
        held_out = [skill.generate(seed + 1, i, 1 + i % 5) for i in range(rows_per_skill)]
        probes += [p.question for p in held_out]
        for i in range(rows_per_skill):
            draw = rng.random()
            problem = held_out[i] if draw < leaked else skill.generate(seed, i, 1 + i % 5)
            question = problem.question if rng.random() < 0.5 else f"Question: {problem.question} Show your work."
            answer, label = problem.answer, "keep"
            draw = rng.random()
            if draw < wrong:
                answer = corrupt(problem.answer, rng)
                label = "keep" if answer == problem.answer else "drop"
            elif draw < wrong + reformatted:
                answer = rewritten(problem.answer)
            reasoning = "\n".join(problem.steps)
            record = Record(
                "solution",
                name,
                question,
                "synthetic",
                0,
                problem.difficulty,
                reasoning=reasoning,
                answer=answer,
                reference_answer=problem.answer,
            )
            rows.append(Labelled(record, label, {"pii": "keep", "quality": "keep"}))
    probe_keys = {question_key(q) for q in probes}
    seen: set[str] = set()
    for item in rows:
        key = question_key(item.record.question.removeprefix("Question: ").removesuffix(" Show your work."))
        item.stage_labels["decontaminate"] = "drop" if key in probe_keys else "keep"
        item.stage_labels["dedup"] = "drop" if question_key(item.record.question) in seen else "keep"
        seen.add(question_key(item.record.question))
    return EmbeddedSample(rows, probes)


def rewritten(answer: str) -> str:
    """The same answer written another way: an integer with a decimal point, a fraction as a decimal."""
    number = parse_number(answer)
    if number is None or answer.count(",") or "(" in answer:
        return answer
    if number.denominator == 1:
        return f"{number.numerator}.0"
    if number.denominator in (2, 4, 5, 8, 10, 20, 25, 50, 100):
        return str(float(number))
    return answer


def format_audit(results: list[StageAudit], rows: int, header: str | None = None) -> str:
    """The audit as a table, with the first false positives and negatives of each stage."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        header or f"audit of {rows} labelled rows (each stage alone; flagged = rejected, or redacted for pii)",
        f"{'stage':16s} {'flagged':>7s} {'labelled':>8s} {'TP':>5s} {'FP':>5s} {'FN':>5s} {'TN':>5s} "
        f"{'precision':>9s} {'recall':>7s} {'agreement':>9s}",
    ]
    for r in results:
        lines.append(
            f"{r.stage:16s} {r.flagged:7d} {r.labelled:8d} {r.tp:5d} {r.fp:5d} {r.fn:5d} {r.tn:5d} "
            f"{pct(r.precision):>9s} {pct(r.recall):>7s} {pct(r.agreement):>9s}"
        )
    for r in results:
        if r.orders_agreed is not None:
            lines.append(f"{r.stage}: the two orders gave the same winner in {r.orders_agreed} pairs")
        if not r.labelled:
            lines.append(f"{r.stage}: no row is labelled for it (add labels: {{{r.stage}: keep|drop}}); counts only")
        for kind, listed in (("false positive", r.false_positives), ("false negative", r.false_negatives)):
            for row in listed[:SHOWN_ROWS]:
                why = f" [{row['reason']}: {row['detail']}]" if row.get("reason") else ""
                lines.append(f"  {r.stage} {kind}: {row['question'][:80]!r} -> {row['answer'][:40]!r}{why}")
            if len(listed) > SHOWN_ROWS:
                lines.append(f"  ... {len(listed) - SHOWN_ROWS} more {kind}s (see --out)")
    return "\n".join(lines)
