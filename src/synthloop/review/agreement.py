"""How far the curation can be trusted, measured against the humans.

- Each stage against the humans on the audit slice: precision and recall of its rejections and
  Cohen's kappa, every audited row weighted by the rows of its stratum it stands for (the slice
  over-samples the smaller side), so the figures estimate the whole round, not the slice.
- Reviewers against each other: Krippendorff's alpha (nominal) over the rows two or more decided.
- The kept set's true error rate with a confidence interval, by prediction-powered inference: the
  stages' own doubt about every kept row (`queue.doubt`), corrected by the humans' labels on the
  audited kept rows (Angelopoulos et al., 2023). The mean of the doubt over all kept rows plus the
  mean of (human label - doubt) over the audited ones is unbiased whatever the doubt is; a doubt
  that tracks the truth narrows the interval."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from synthloop.records import Verdict
from synthloop.review.decisions import HumanVerdict
from synthloop.review.queue import CORRECTNESS_STAGES, UNANSWERED, AuditSlice, doubt


@dataclass
class RowFacts:
    """What the figures need of a row: the stages' verdicts (before any human) and its skill."""

    kept: bool
    skill: str
    verdicts: list[Verdict]


def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def human_wrong(human: HumanVerdict) -> bool:
    """Whether the humans found the row wrong as the teacher wrote it: rejected, or accepted only once
    edited (an edit is a correction; the server keeps no edit that changes nothing)."""
    return not human.keep or bool(human.edit)


def weights(audit: AuditSlice, decided: list[str]) -> dict[str, float]:
    """Each decided audit row's weight: the rows of its stratum it stands for (the stratum's population
    over its rows decided so far), so that strata decided unevenly still estimate the whole round."""
    per_stratum = Counter(audit.member[row_id] for row_id in decided)
    return {row_id: audit.strata[audit.member[row_id]]["population"] / per_stratum[audit.member[row_id]]
            for row_id in decided}  # fmt: skip


def stage_agreement(
    rows: dict[str, RowFacts], audit: AuditSlice, humans: dict[str, HumanVerdict]
) -> dict[str, dict[str, Any]]:
    """Per stage (and `curation` as a whole), on the audited rows a human decided and the stage saw:
    the weighted confusion of its rejections against the humans', precision, recall and Cohen's kappa."""
    decided = [row_id for row_id in audit.rows if row_id in humans and row_id in rows]
    weight = weights(audit, decided)
    tables: dict[str, Counter[str]] = {}
    counted: Counter[str] = Counter()
    for row_id in decided:
        facts, wrong = rows[row_id], human_wrong(humans[row_id])
        stages = [(v.stage, v.keep) for v in facts.verdicts if v.stage not in (UNANSWERED, "human")]
        for stage, keep in [*stages, ("curation", facts.kept)]:
            cell = ("reject" if not keep else "keep") + "/" + ("reject" if wrong else "keep")
            tables.setdefault(stage, Counter())[cell] += weight[row_id]
            counted[stage] += 1
    return {
        stage: confusion_figures(table) | {"rows": counted[stage]}
        for stage, table in tables.items()
        if stage in CORRECTNESS_STAGES or stage == "curation" or table["reject/reject"] + table["reject/keep"] > 0
    }  # a stage that checks something else (PII, contamination) and rejected no audited row has nothing to say


def confusion_figures(table: Counter[str]) -> dict[str, Any]:
    """`table`: weights of stage/human cells; a rejection is the positive (the stage's catch)."""
    tp, fp = table["reject/reject"], table["reject/keep"]
    fn, tn = table["keep/reject"], table["keep/keep"]
    total = tp + fp + fn + tn
    observed = (tp + tn) / total if total else None
    expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / total**2 if total else None
    kappa = None
    if observed is not None and expected is not None and expected < 1.0:
        kappa = (observed - expected) / (1.0 - expected)
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "kappa": kappa,
        "agreement": observed,
        "weighted": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def krippendorff_alpha(units: list[list[str]]) -> float | None:
    """Nominal Krippendorff's alpha over units (rows) each coded by two or more reviewers. None when it
    is undefined: fewer than two such rows' values, or every value the same (no variation to agree on)."""
    coincidence: Counter[tuple[str, str]] = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j:
                    coincidence[(a, b)] += 1.0 / (m - 1)
    totals: Counter[str] = Counter()
    for (a, _), weight in coincidence.items():
        totals[a] += weight
    n = sum(totals.values())
    if n < 2:
        return None
    observed = sum(w for (a, b), w in coincidence.items() if a != b)
    expected = sum(totals[a] * totals[b] for a in totals for b in totals if a != b)
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def reviewer_alpha(humans: dict[str, HumanVerdict]) -> dict[str, Any]:
    units = [[d.action for d in h.decisions] for h in humans.values() if len(h.decisions) >= 2]
    return {
        "rows_with_several_reviewers": len(units),
        "rows_disagreed": sum(len(set(u)) > 1 for u in units),
        "alpha": krippendorff_alpha(units),
    }


def kept_error_estimate(
    rows: dict[str, RowFacts], audit: AuditSlice, humans: dict[str, HumanVerdict], confidence: float = 0.95
) -> dict[str, Any]:
    """The share of the curation's kept rows that are wrong (rejected or corrected by the humans), with a
    `confidence` interval: prediction-powered over all kept rows and the audited kept rows a human
    decided (each weighted for its stratum), and, for comparison, from the humans alone (Wilson)."""
    kept_ids = [row_id for row_id, facts in rows.items() if facts.kept]
    labelled = [row_id for row_id in audit.rows if row_id in humans and row_id in rows and rows[row_id].kept]
    out: dict[str, Any] = {"kept_rows": len(kept_ids), "audited": len(labelled), "confidence": confidence}
    if len(labelled) < 2 or not kept_ids:
        return out | {"error_rate": None, "why": "fewer than 2 audited kept rows decided"}
    z = z_value(confidence)
    w = weights(audit, labelled)
    total = sum(w.values())
    n_eff = total**2 / sum(v * v for v in w.values())  # the sample size equal weights would give
    predicted = [doubt(rows[row_id].verdicts) for row_id in kept_ids]
    truth = {row_id: 1.0 if human_wrong(humans[row_id]) else 0.0 for row_id in labelled}
    rectifier = {row_id: truth[row_id] - doubt(rows[row_id].verdicts) for row_id in labelled}
    correction = sum(w[k] * rectifier[k] for k in labelled) / total
    spread = sum(w[k] ** 2 * (rectifier[k] - correction) ** 2 for k in labelled) / total**2 * n_eff / (n_eff - 1)
    share = sum(w[k] * truth[k] for k in labelled) / total
    if spread == 0.0:  # every audited row alike: no spread to measure, so assume the widest a share allows
        smoothed = (share * n_eff + 2) / (n_eff + 4)
        spread = smoothed * (1 - smoothed) / n_eff
    estimate = mean(predicted) + correction
    se = math.sqrt(variance(predicted) / len(predicted) + spread)
    low, high = wilson(share, n_eff, z)
    return out | {
        "error_rate": clip(estimate),
        "low": clip(estimate - z * se),
        "high": clip(estimate + z * se),
        "human_only": {"error_rate": share, "low": low, "high": high},
    }


def wilson(share: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share seen in `n` rows: honest at a few dozen, where the normal
    approximation leaves [0, 1] or shrinks to nothing at 0% and 100%."""
    if n <= 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def variance(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def clip(value: float) -> float:
    return min(1.0, max(0.0, value))
