"""From the weakness report to the next round's budget.

`proportional_to_error`: every skill first gets `floor` (none is starved, and a mastered skill
keeps being rehearsed); the rest is split in proportion to error ** `sharpness`. Sharpness 1 is
plain proportional; 2 or more concentrates the budget on the weakest skills, which matters when
most errors are high (0.9 vs 0.6 is a 1.5x split at sharpness 1, 2.25x at 2).
`uniform`: equal shares. Counts are rounded by largest remainder, so they always add up to the
budget exactly."""

from __future__ import annotations

from typing import Any


def weakness_report(per_skill: dict[str, float]) -> list[dict[str, Any]]:
    """Skills from weakest to strongest, with their error rates."""
    ranked = sorted(per_skill.items(), key=lambda item: (item[1], item[0]))
    return [{"skill": s, "accuracy": round(a, 4), "error": round(1 - a, 4)} for s, a in ranked]


def allocate(
    skills: list[str], per_skill: dict[str, float] | None, policy: str, floor: float, sharpness: float = 1.0
) -> dict[str, float]:
    """Shares of the budget per skill, summing to 1. Round 1 (no report yet) is uniform."""
    if per_skill is None or policy == "uniform":
        return {s: 1 / len(skills) for s in skills}
    if policy != "proportional_to_error":
        raise ValueError(f"unknown allocation policy {policy!r}")
    floor = min(floor, 1 / len(skills))
    errors = {s: (1.0 - per_skill.get(s, 0.0)) ** sharpness for s in skills}
    total = sum(errors.values())
    rest = 1.0 - floor * len(skills)
    if total == 0:  # everything mastered: rehearse evenly
        return {s: 1 / len(skills) for s in skills}
    return {s: floor + rest * errors[s] / total for s in skills}


def counts_from_shares(shares: dict[str, float], budget: int) -> dict[str, int]:
    raw = {s: share * budget for s, share in shares.items()}
    counts = {s: int(v) for s, v in raw.items()}
    leftover = budget - sum(counts.values())
    for s in sorted(raw, key=lambda s: (counts[s] - raw[s], s))[:leftover]:
        counts[s] += 1
    return counts
