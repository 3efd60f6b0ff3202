"""What a run's dataset is, measured: the rows it exports (human decisions applied), the golden rows
it was grounded with, and the seed's Natural vs Synthetic comparison for this very data.

`dataset_facts` reads the run directory once and returns plain JSON: the dataset card
(`reports/card.py`) and report.html both render it, so the two always say the same."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.curation.pii import redact
from synthloop.monitoring import embeddings
from synthloop.monitoring.diversity import SeededSample, distinct_n, row_text
from synthloop.records import Record
from synthloop.review.apply import reviewed_rows
from synthloop.review.decisions import DecisionLog, human_verdicts
from synthloop.review.rounds import check_run, finished_rounds, review_figures
from synthloop.storage.shards import iter_records, read_marker

DIVERSITY_SAMPLE = 1000  # rows each side is measured on: distinct-n falls with sample size, so both sides match


def reviewed_run_rows(run_root: Path, rounds: list[int], edits_to: str) -> Iterator[Record]:
    """The rounds' curated rows and the rejected rows humans accepted, decisions applied, streamed (an
    edit's original, rejected as `replaced_by_edit`, comes just before its edited row)."""
    decisions = DecisionLog(run_root).read()
    for number in rounds:
        yield from reviewed_rows(run_root / "rounds" / f"{number:02d}", human_verdicts(decisions, number), edits_to)


def exported_rows(run_root: Path, rounds: list[int], edits_to: str) -> Iterator[Record]:
    """The rows a dataset of these rounds holds: curated rows and rows humans accepted, decisions applied,
    rejected ones left out (they stay in the run directory)."""
    return (row for row in reviewed_run_rows(run_root, rounds, edits_to) if row.kept)


def golden_rows(run_root: Path, rounds: list[int]) -> list[Record]:
    """The real (human or reference) rows the rounds' training mixes held, once each."""
    seen: dict[str, Record] = {}
    for number in rounds:
        train = run_root / "rounds" / f"{number:02d}" / "train"
        for row in iter_records(train) if train.is_dir() else []:
            if row.source != "synthetic" and row.round == 0:  # a reviewer's edit (round N) is not given data
                seen.setdefault(row.id, row)
    return list(seen.values())


@dataclass
class DatasetTally:
    """What one pass over the exported rows counts, and a seeded sample of the synthetic ones."""

    rows: int = 0
    synthetic: int = 0
    human_edited: int = 0
    verified: int = 0
    per_skill: Counter[str] = field(default_factory=Counter)
    teachers: Counter[str] = field(default_factory=Counter)
    sample: SeededSample = field(default_factory=lambda: SeededSample(0, DIVERSITY_SAMPLE))

    def add(self, row: Record) -> None:
        self.rows += 1
        self.per_skill[row.skill] += 1
        self.human_edited += row.source == "human"
        if row.source == "synthetic":
            self.synthetic += 1
            self.verified += is_verified(row)
            self.teachers[f"{row.teacher_backend}:{row.teacher_model}"] += 1
            self.sample.offer(row)


def dataset_facts(run_root: Path, only_round: int | None = None, embed: bool = True) -> dict[str, Any]:
    """Everything the card and the report say about the dataset of `only_round` (or every finished round)."""
    manifest = check_run(run_root)
    recipe = manifest["recipe"]
    rounds = [only_round] if only_round is not None else finished_rounds(run_root)
    edits_to = (recipe.get("grounding") or {}).get("human_edits", "golden")
    tally = DatasetTally()
    for row in exported_rows(run_root, rounds, edits_to):
        tally.add(row)
    golden = golden_rows(run_root, rounds)
    per_round = [round_facts(run_root, number) for number in rounds]
    review = {k: v for k, v in review_figures(run_root).items() if int(k) in rounds}
    return {
        "run_id": manifest.get("run_id"),
        "recipe_name": recipe.get("name"),
        "recipe_hash": manifest.get("recipe_hash"),
        "versions": manifest.get("versions", {}),
        "rounds": rounds,
        "rows": tally.rows,
        "synthetic_rows": tally.synthetic,
        "human_edited_rows": tally.human_edited,
        "golden_rows": len(golden),
        "per_skill": dict(sorted(tally.per_skill.items())),
        "teachers": dict(tally.teachers.most_common()),
        "per_round": per_round,
        "curation": curation_settings(recipe),
        "review": review,
        "natural_vs_synthetic": natural_vs_synthetic(tally, golden, per_round, review, embed),
    }


def round_facts(run_root: Path, number: int) -> dict[str, Any]:
    rdir = run_root / "rounds" / f"{number:02d}"
    curated, generated = read_marker(rdir / "curated"), read_marker(rdir / "generated")
    calls = generated.get("calls", {})
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for row in iter_records(rdir / "generated"):
        statuses[row.parse_status or ("failed_call" if row.error else "unknown")] += 1
        if row.error:
            errors[" ".join(row.error.split())[:160]] += 1
    return {
        "round": number,
        "generated": curated.get("generated", 0),
        "kept": curated.get("kept", 0),
        "rejected": curated.get("rejected", {}),
        "pii": curated.get("pii", {}),
        "abstained": curated.get("abstained", {}),
        "calls": {k: calls.get(k, 0) for k in ("issued", "cached", "failed", "prompt_tokens", "completion_tokens")},
        "cost_usd": calls.get("cost_usd", 0.0),
        "parse_status": dict(statuses.most_common()),
        "errors": dict(errors.most_common(10)),
    }


def curation_settings(recipe: dict[str, Any]) -> dict[str, Any]:
    curation = recipe.get("curation") or {}
    decontaminate = curation.get("decontaminate")
    return {
        "stages": [name for name, value in curation.items() if value not in (None, False, [], {})],
        "decontamination_sets": (
            ["the run's held-out probes", *map(str, decontaminate.get("eval_sets") or [])] if decontaminate else []
        ),
        "decontamination": decontaminate,
        "pii_policy": (curation.get("pii") or {}).get("action", "off") if curation.get("pii") else "off",
    }


def natural_vs_synthetic(
    synthetic: DatasetTally,
    golden: list[Record],
    per_round: list[dict[str, Any]],
    review: dict[str, Any],
    embed: bool,
) -> dict[str, dict[str, Any]]:
    """The seed's comparison, measured here: availability, cost, privacy, accuracy, diversity, structure."""
    generated = sum(r["generated"] for r in per_round)
    tokens = sum(r["calls"]["prompt_tokens"] + r["calls"]["completion_tokens"] for r in per_round)
    cost = sum(r["cost_usd"] or 0.0 for r in per_round)
    pii_synthetic: Counter[str] = Counter()
    for r in per_round:
        pii_synthetic.update(r["pii"])
    pii_golden: Counter[str] = Counter()
    for row in golden:
        for text in (row.question, row.reasoning, row.answer or ""):
            pii_golden.update(redact(text)[1])
    statuses: Counter[str] = Counter()
    for r in per_round:
        statuses.update(r["parse_status"])
    usable = sum(n for status, n in statuses.items() if status in ("schema", "parsed", "repaired"))
    golden_sample = SeededSample(0, DIVERSITY_SAMPLE)
    for row in golden:
        golden_sample.offer(row)
    audited = [(k, v["kept_error"]) for k, v in review.items() if v["kept_error"].get("error_rate") is not None]
    kept, verified = synthetic.synthetic, synthetic.verified
    size = same_size(kept, len(golden))
    return {
        "availability": {
            "synthetic": {"generated": generated, "kept_by_curation": sum(r["kept"] for r in per_round), "kept": kept},
            "natural": {"golden": len(golden)},
        },
        "cost": {
            "synthetic": {
                "tokens_per_kept_row": round(tokens / kept, 1) if kept else None,
                "usd_per_kept_row": round(cost / kept, 6) if kept else None,
                "tokens": tokens,
                "usd": round(cost, 4),
            },
            "natural": {"note": "given: its cost is not known to the run"},
        },
        "privacy": {
            "synthetic": {"found_per_kind": dict(pii_synthetic), "handled": "per the PII policy"},
            "natural": {"found_per_kind": dict(pii_golden), "handled": "not scrubbed (found by the same detector)"},
        },
        "accuracy": {
            "synthetic": {
                "verified_share": round(verified / kept, 4) if kept else None,
                "human_audited_error": {k: e for k, e in audited},
                "reviewed_rounds": sorted(review, key=int),
            },
            "natural": {"note": "taken as correct (the reference the loop is grounded on)"},
        },
        "diversity": {  # both sides measured on as many rows: distinct-n falls as a sample grows
            "synthetic": diversity_figures(synthetic.sample.rows(), size, embed),
            "natural": diversity_figures(golden_sample.rows(), size, embed),
        },
        "structure": {
            "synthetic": {
                "parse_success": round(usable / sum(statuses.values()), 4) if statuses else None,
                "schema_enforced_share": round(statuses["schema"] / sum(statuses.values()), 4) if statuses else None,
                "parse_status": dict(statuses),
            },
            "natural": {"parse_success": 1.0 if golden else None, "note": "loaded with question and answer checked"},
        },
    }


def is_verified(row: Record) -> bool:
    """A verifier checked the answer and found it right (an abstention says why in its detail)."""
    return any(v.stage in ("verify", "verify_code") and v.keep and not v.detail for v in row.verdicts) or any(
        v.stage == "verify_code" and v.keep and v.score == 1.0 for v in row.verdicts
    )


def same_size(a: int, b: int) -> int:
    """Rows each side's diversity is measured on: as many on both sides, at most DIVERSITY_SAMPLE."""
    return min(a, b, DIVERSITY_SAMPLE) if a and b else min(max(a, b), DIVERSITY_SAMPLE)


def diversity_figures(sample: list[Record], size: int, embed: bool) -> dict[str, Any]:
    """Distinct-n (and embedding dispersion) of the first `size` rows of a seeded sample."""
    texts = [row_text(r) for r in sample[:size]]
    out: dict[str, Any] = {
        "rows_measured": len(texts),
        "distinct_2": round(distinct_n(texts, 2), 4),
        "distinct_3": round(distinct_n(texts, 3), 4),
    }
    if embed and texts and embeddings.available():
        out["embedding_dispersion"] = embeddings.embedding_diversity(texts, 0).get("embedding_dispersion")
    return out
