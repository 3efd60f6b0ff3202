"""Targeted vs uniform allocation at equal total generation and training budget.

For each seed, the default recipe runs with `allocation.policy: proportional_to_error` (targeted)
and with `uniform`. Round 1 is uniform under both policies, so the uniform arm starts from a copy
of the targeted arm's round 1 (same data, same student) and the comparison is exactly about what
rounds 2.. do with the same budget. Reports, per seed and on average: the accuracy of the skill
that was weakest after round 1, the weakest skill at the end, and macro accuracy.

    python bench/targeting.py [--seeds 0 1 2] [--out bench/.out/targeting]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from common import emit

from synthloop.config import Recipe, load_recipe, validate_recipe
from synthloop.loop import run_loop
from synthloop.storage.rundir import open_run, set_round_status


def with_policy(recipe: Recipe, seed: int, policy: str) -> Recipe:
    data = recipe.model_dump()
    data["seed"], data["allocation"]["policy"] = seed, policy
    return validate_recipe(data)


def final_metrics(root: Path) -> list[dict]:
    return json.loads((root / "metrics.json").read_text())["rounds"]


def run_seed(base: Recipe, seed: int, out: Path) -> dict:
    targeted_root, uniform_root = out / f"seed{seed}-targeted", out / f"seed{seed}-uniform"
    for root in (targeted_root, uniform_root):
        shutil.rmtree(root, ignore_errors=True)
    run_loop(with_policy(base, seed, "proportional_to_error"), targeted_root, log=lambda line: None)
    uniform = with_policy(base, seed, "uniform")
    run, manifest = open_run(uniform_root, uniform, resume=False)
    shutil.copytree(targeted_root / "rounds" / "01", uniform_root / "rounds" / "01")
    shutil.copytree(targeted_root / "tokenizer", uniform_root / "tokenizer")
    set_round_status(run, manifest, 1, "done")
    run_loop(uniform, uniform_root, resume=True, log=lambda line: None)

    targeted, uniform_rounds = final_metrics(targeted_root), final_metrics(uniform_root)
    first = targeted[0]["eval"]["per_skill"]
    weakest = min(first, key=lambda s: (first[s], s))
    result = {"seed": seed, "weakest_after_round_1": weakest, "its_round_1_accuracy": round(first[weakest], 3)}
    for name, rounds in (("targeted", targeted), ("uniform", uniform_rounds)):
        last = rounds[-1]["eval"]
        result[name] = {
            "weakest_after_round_1": round(last["per_skill"][weakest], 3),
            "weakest_at_end": round(min(last["per_skill"].values()), 3),
            "macro": round(last["macro"], 3),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("bench/.out/targeting"))
    args = parser.parse_args()
    base, start = load_recipe(), time.perf_counter()
    results = [run_seed(base, seed, args.out) for seed in args.seeds]

    def mean(arm: str, key: str) -> float:
        return round(statistics.mean(r[arm][key] for r in results), 3)

    summary = {
        arm: {key: mean(arm, key) for key in ("weakest_after_round_1", "weakest_at_end", "macro")}
        for arm in ("targeted", "uniform")
    }
    emit(
        {
            "bench": "targeting",
            "recipe": base.name,
            "rounds": base.rounds,
            "seeds": args.seeds,
            "budget_per_round": base.generation.budget_per_round,
            "steps_per_round": base.student.train.steps_per_round,
            "mean": summary,
            "targeted_wins_weakest": summary["targeted"]["weakest_after_round_1"]
            > summary["uniform"]["weakest_after_round_1"],
            "per_seed": results,
            "seconds": round(time.perf_counter() - start),
        }
    )


if __name__ == "__main__":
    main()
