"""Collapse guards: each round's monitor figures against round 1's, and the actions the recipe ties to
them. A figure that moved in its bad direction by more than the guard's tolerance (relative to round 1)
triggers the guard: `warn` logs and records it, `raise_golden_ratio` gives the next round more golden
rows, `stop` ends the run after this round. Everything checked is recorded, triggered or not."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from synthloop.config import GuardConfig, MonitorConfig

# The direction in which each figure gets worse.
WORSE_WHEN = {
    "distinct_2_questions": "lower",
    "distinct_3_texts": "lower",
    "compression_ratio": "higher",
    "unique_question_share": "lower",
    "embedding_dispersion": "lower",
    "vendi_score": "lower",
    "golden_loss": "higher",
    "tail_coverage": "lower",
}


def worsening(first: float, value: float, worse_when: str) -> float | None:
    """The relative change from `first` in the bad direction (0.3: 30% worse; negative: better)."""
    if first == 0:
        return None
    change = (value - first) / abs(first)
    return change if worse_when == "higher" else -change


def check(guard: GuardConfig, history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One guard on the monitor figures of rounds 1..N (the last is the round just finished)."""
    first, value = history[0].get(guard.metric), history[-1].get(guard.metric)
    result: dict[str, Any] = {
        "metric": guard.metric,
        "worse_when": WORSE_WHEN[guard.metric],
        "round_1": first,
        "value": value,
        "tolerance": guard.tolerance,
        "action": guard.action,
    }
    if history[-1].get(f"{guard.metric}_diverged"):  # the student's loss is NaN or infinite: the worst there is
        return result | {"worsened_by": None, "triggered": True, "note": "not finite: the student diverged"}
    if first is None or value is None or not all(map(math.isfinite, (first, value))):
        return result | {"worsened_by": None, "triggered": False, "note": "not measured in this run"}
    change = worsening(first, value, WORSE_WHEN[guard.metric])
    triggered = change is not None and change > guard.tolerance
    return result | {"worsened_by": None if change is None else round(change, 4), "triggered": triggered}


def apply_guards(cfg: MonitorConfig, history: Sequence[dict[str, Any]], golden_ratio: float) -> dict[str, Any]:
    """What the guards decide after the last round of `history`, run with `golden_ratio`: the checks,
    the actions taken, the next round's golden ratio and whether to stop."""
    checks = [check(guard, history) for guard in cfg.guards] if len(history) > 1 else []
    actions = sorted({c["action"] for c in checks if c["triggered"]})
    next_ratio = golden_ratio
    if "raise_golden_ratio" in actions:
        next_ratio = max(golden_ratio, round(min(cfg.max_golden_ratio, golden_ratio + cfg.golden_ratio_step), 4))
    return {
        "checks": checks,
        "actions": actions,
        "golden_ratio": golden_ratio,
        "golden_ratio_next": next_ratio,
        "stop": "stop" in actions,
    }


def guard_lines(number: int, decision: dict[str, Any]) -> list[str]:
    """One log line per triggered guard, saying what moved, by how much, and what was done."""
    lines = []
    for c in decision["checks"]:
        if not c["triggered"]:
            continue
        ratios = f"{decision['golden_ratio']} -> {decision['golden_ratio_next']}"
        done = {
            "warn": "warning only",
            "raise_golden_ratio": f"next round's golden ratio {ratios}",
            "stop": "the run stops after this round",
        }[c["action"]]
        moved = "not finite" if c["worsened_by"] is None else f"{c['worsened_by']:.0%} worse"
        lines.append(
            f"round {number}: guard {c['metric']}: {c['round_1']} in round 1, {c['value']} now "
            f"({moved}, tolerance {c['tolerance']:.0%}): {done}"
        )
    return lines
