"""Where human attention pays: rows whose curation stages disagree first, and a random stratified audit
slice of kept and rejected rows, so that the figures estimated from the humans stay unbiased.

The audit slice is drawn once per round (seeded by the recipe's seed) and written to
`RUN/review/audit-NN.json` with each stratum's population and sample size: the same slice after a
restart, and the weights the agreement figures need. The queue interleaves the two: a disagreement,
an audit row, a disagreement, ... so a reviewer who stops early has still audited."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthloop.records import Verdict
from synthloop.storage.atomic import read_json, write_json

CORRECTNESS_STAGES = ("verify", "verify_code", "self_consistency", "reward", "judge", "judge_pairwise")
UNANSWERED = "generate"  # the stage that rejects failed calls and unparsable replies: nothing to review
DEFAULT_AUDIT_SIZE = 100


@dataclass(frozen=True)
class Thresholds:
    """Where the stages draw their lines (from the run's recipe), to find rows scored close to one."""

    judge: float = 7.0
    reward: float = 0.0
    min_agreement: float = 0.5

    @classmethod
    def from_recipe(cls, recipe: dict[str, Any]) -> Thresholds:
        curation = recipe.get("curation") or {}
        judge, reward, consistency = (curation.get(k) or {} for k in ("judge", "reward", "self_consistency"))
        return cls(
            float(judge.get("threshold", 7.0)),
            float(reward.get("threshold", 0.0)),
            float(consistency.get("min_agreement", 0.5)),
        )


def disagreement(verdicts: list[Verdict], thresholds: Thresholds) -> tuple[float, str] | None:
    """How strongly the stages' verdicts call for a human (higher first) and why; None: nothing to resolve."""
    found: list[tuple[float, str]] = []
    verdict_of = {v.stage: v for v in verdicts if v.stage in CORRECTNESS_STAGES}
    keeps = {stage for stage, v in verdict_of.items() if v.keep}
    rejects = set(verdict_of) - keeps
    if keeps and rejects:
        found.append((3.0, f"{', '.join(sorted(keeps))} kept it; {', '.join(sorted(rejects))} rejected it"))
    for v in verdicts:
        if v.score is None:
            continue
        if v.stage == "self_consistency" and v.score < thresholds.min_agreement + 0.25:
            found.append((2.0 + (1 - v.score) / 2, f"narrow majority: {v.score:.0%} of the samples agree"))
        elif v.stage == "judge" and abs(v.score - thresholds.judge) <= 1.5:
            why = f"judge score {v.score:g} near the threshold {thresholds.judge:g}"
            found.append((2.0 - abs(v.score - thresholds.judge) / 3, why))
        elif v.stage == "reward" and abs(v.score - thresholds.reward) <= 0.5:
            why = f"reward {v.score:.3f} near the threshold {thresholds.reward:g}"
            found.append((2.0 - abs(v.score - thresholds.reward), why))
        elif v.stage == "judge_pairwise" and 0.4 <= v.score <= 0.6:
            found.append((1.5, f"pairwise: won {v.score:.0%} of its comparisons"))
    if any(v.stage == "verify" and v.keep and v.detail for v in verdicts):
        found.append((1.0, "the verifier abstained (no reference it could compare)"))
    return max(found) if found else None


def doubt(verdicts: list[Verdict]) -> float:
    """The stages' own estimate (0 to 1) that a row is wrong, from their scores; 0 where none scored it.
    It is the prediction that prediction-powered inference corrects with the humans' labels: any value is
    valid there, a better one only narrows the interval."""
    values = []
    for v in verdicts:
        if v.score is None:
            continue
        if v.stage == "judge":
            values.append(min(1.0, max(0.0, (10.0 - v.score) / 9.0)))
        elif v.stage in ("self_consistency", "judge_pairwise"):
            values.append(min(1.0, max(0.0, 1.0 - v.score)))
    return max(values, default=0.0)


def stratum(kept: bool, skill: str) -> str:
    return f"{'kept' if kept else 'rejected'}/{skill}"


@dataclass
class AuditSlice:
    round: int
    rows: list[str]  # row ids in review order (shuffled)
    strata: dict[str, dict[str, int]]  # stratum -> {"population": N, "sampled": n}
    member: dict[str, str]  # row id -> stratum (sampled rows only)

    def weight(self, row_id: str) -> float:
        """Rows of the population each audited row stands for (its inverse inclusion probability)."""
        s = self.strata[self.member[row_id]]
        return s["population"] / s["sampled"]

    def to_json(self) -> dict[str, Any]:
        return {"round": self.round, "rows": self.rows, "strata": self.strata, "member": self.member}


def draw_audit_slice(round_: int, population: dict[str, tuple[bool, str]], size: int, seed: int) -> AuditSlice:
    """`size` rows (or all), half from the kept rows and half from the rejected ones (the rest to the other
    side when one is short), each half spread over the skills in proportion (largest remainders), drawn
    at random within each stratum. `population`: row id -> (kept by curation, skill)."""
    rng = random.Random(seed)
    groups: dict[bool, dict[str, list[str]]] = {True: {}, False: {}}
    for row_id in sorted(population):
        kept, skill = population[row_id]
        groups[kept].setdefault(skill, []).append(row_id)
    totals = {kept: sum(len(ids) for ids in by_skill.values()) for kept, by_skill in groups.items()}
    size = min(size, totals[True] + totals[False])
    want_kept = min(totals[True], max(size // 2 + size % 2, size - totals[False]))
    wants = {True: want_kept, False: size - want_kept}
    strata: dict[str, dict[str, int]] = {}
    member: dict[str, str] = {}
    for kept, by_skill in groups.items():
        for skill, n in proportional(by_skill, wants[kept]).items():
            name = stratum(kept, skill)
            strata[name] = {"population": len(by_skill[skill]), "sampled": n}
            for row_id in rng.sample(by_skill[skill], n):
                member[row_id] = name
    rows = sorted(member)
    rng.shuffle(rows)
    return AuditSlice(round_, rows, strata, member)


def proportional(by_skill: dict[str, list[str]], want: int) -> dict[str, int]:
    total = sum(len(ids) for ids in by_skill.values())
    if total == 0 or want == 0:
        return {skill: 0 for skill in by_skill}
    exact = {skill: want * len(ids) / total for skill, ids in by_skill.items()}
    counts = {skill: int(share) for skill, share in exact.items()}
    for skill in sorted(exact, key=lambda s: (counts[s] - exact[s], s))[: want - sum(counts.values())]:
        counts[skill] += 1
    return counts


def audit_slice(
    review_dir: Path,
    round_: int,
    population: dict[str, tuple[bool, str]],
    size: int | None,
    seed: int,
    started: bool = False,
) -> AuditSlice:
    """The round's audit slice: the one drawn before from these same rows, else a new one of `size` rows
    (default DEFAULT_AUDIT_SIZE), written before any reviewer sees it. Asking for another size once it is
    drawn would change what reviewers' decisions stand for (`started`: some have decided already), or
    pull it from under a server that has it open: refused."""
    from synthloop.review.decisions import ReviewError

    path = review_dir / f"audit-{round_:02d}.json"
    rows_digest = hashlib.sha256(json.dumps(sorted(population.items())).encode()).hexdigest()[:16]
    try:
        saved = read_json(path)
        current = saved.get("population_digest") == rows_digest
        drawn = AuditSlice(round_, saved["rows"], saved["strata"], saved["member"]) if current else None
    except (OSError, ValueError, KeyError, AttributeError):
        drawn = None
    if drawn is not None:
        if size is not None and size != saved.get("size"):
            state = "reviewers have decided rows of it" if started else "a review server may have it open"
            raise ReviewError(
                f"round {round_}'s audit slice was drawn with {saved.get('size')} rows ({path}) and {state}: leave "
                "--audit-size out to keep it, or delete that file to draw another before anyone reviews"
            )
        return drawn
    size = DEFAULT_AUDIT_SIZE if size is None else size
    drawn = draw_audit_slice(round_, population, size, seed)
    review_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, {**drawn.to_json(), "size": size, "seed": seed, "population_digest": rows_digest})
    return drawn


def review_order(disagreements: list[tuple[float, str]], audit: list[str]) -> list[str]:
    """Disagreements (most pressing first) and audit rows, alternating; a row in both comes once."""
    ranked = [row_id for _, row_id in sorted(disagreements, key=lambda item: (-item[0], item[1]))]
    order: list[str] = []
    seen: set[str] = set()
    for i in range(max(len(ranked), len(audit))):
        for source in (ranked, audit):
            if i < len(source) and source[i] not in seen:
                seen.add(source[i])
                order.append(source[i])
    return order
